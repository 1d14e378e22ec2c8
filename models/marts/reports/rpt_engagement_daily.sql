-- DAU, WAU, MAU per day without joining days to events: every active user-day opens the user's presence in
-- each trailing window for the days it newly covers and closes it when the window has passed it, and a
-- running sum of those openings and closings over the days counts the distinct users in each window. A
-- user-day less than N days after the user's previous one only extends the presence, so nobody counts
-- twice (see the unit tests for the window edges).

with

as_of as (

    select {{ rekindle_as_of() }} as evaluated_at

),

windows as (

    select
        'dau' as measure,
        1 as window_days
    union all
    select
        'wau' as measure,
        7 as window_days
    union all
    select
        'mau' as measure,
        30 as window_days

),

-- the active user-days (the `any` rows of int_reports__user_report_days, incremental by user) counted by
-- day and the user's previous active day: both are all the windows need, and there are hundreds of such
-- pairs, not millions
sequenced as (

    select
        activity_date,
        previous_date,
        count(*) as active_users,
        sum(event_count) as events
    from {{ ref('int_reports__user_report_days') }}
    where report_event = 'any'
    group by activity_date, previous_date

),

presence_changes as (

    -- present from the first day this active day newly covers (the previous one covered up to its own + N - 1)
    select
        windows.measure,
        case
            when
                sequenced.previous_date is null
                or {{ dbt.dateadd('day', 'windows.window_days', 'sequenced.previous_date') }} <= sequenced.activity_date
                then sequenced.activity_date
            else cast({{ dbt.dateadd('day', 'windows.window_days', 'sequenced.previous_date') }} as date)
        end as change_date,
        sequenced.active_users as presence_change
    from sequenced
    cross join windows
    union all
    -- absent N days after the active day (a later active day in between reopens it there)
    select
        windows.measure,
        cast({{ dbt.dateadd('day', 'windows.window_days', 'sequenced.activity_date') }} as date) as change_date,
        -1 * sequenced.active_users as presence_change
    from sequenced
    cross join windows

),

daily_changes as (

    select
        change_date,
        sum(case when measure = 'dau' then presence_change else 0 end) as dau_change,
        sum(case when measure = 'wau' then presence_change else 0 end) as wau_change,
        sum(case when measure = 'mau' then presence_change else 0 end) as mau_change
    from presence_changes
    group by change_date

),

daily_activity as (

    select
        activity_date,
        sum(case when previous_date is null then active_users else 0 end) as new_users,
        sum(events) as events
    from sequenced
    group by activity_date

),

days as (

    {{ report_spine('(select min(activity_date) from sequenced)', '(select evaluated_at from as_of)') }}

),

counted as (

    select
        days.period_start as activity_date,
        sum(coalesce(daily_changes.dau_change, 0)) over running_total as dau,
        sum(coalesce(daily_changes.wau_change, 0)) over running_total as wau,
        sum(coalesce(daily_changes.mau_change, 0)) over running_total as mau,
        coalesce(daily_activity.new_users, 0) as new_users,
        coalesce(daily_activity.events, 0) as events
    from days
    left join daily_changes on days.period_start = daily_changes.change_date
    left join daily_activity on days.period_start = daily_activity.activity_date
    window running_total as (order by days.period_start rows between unbounded preceding and current row)

),

final as (

    select
        counted.activity_date,
        cast(counted.dau as {{ dbt.type_bigint() }}) as dau,
        cast(counted.wau as {{ dbt.type_bigint() }}) as wau,
        cast(counted.mau as {{ dbt.type_bigint() }}) as mau,
        {{ report_ratio('counted.dau', 'counted.mau') }} as stickiness,
        cast(counted.new_users as {{ dbt.type_bigint() }}) as new_users,
        cast(counted.dau - counted.new_users as {{ dbt.type_bigint() }}) as returning_users,
        cast(counted.events as {{ dbt.type_bigint() }}) as events,
        {{ dbt.dateadd('day', 1, 'counted.activity_date') }} > as_of.evaluated_at as is_partial_day,
        as_of.evaluated_at
    from counted
    cross join as_of
    -- every day that had begun by the as-of instant: a midnight as-of ends with the day before
    where cast(counted.activity_date as timestamp) < as_of.evaluated_at

)

select * from final
