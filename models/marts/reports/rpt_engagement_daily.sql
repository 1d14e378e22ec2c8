-- DAU, WAU, MAU per day without joining days to events: every active user-day opens the user's presence in
-- a trailing window for the days it newly covers and closes it when the window has passed, and a running
-- sum of those openings and closings over the days gives the distinct users in each window. A user-day
-- whose previous active day is less than N days earlier only extends the user's presence, so a user is
-- never counted twice (see the unit tests for the window edges).
{%- set windows = {'dau': 1, 'wau': 7, 'mau': 30} %}

with

as_of as (

    select {{ rekindle_as_of() }} as evaluated_at

),

active_days as (

    select
        user_id,
        activity_date,
        sum(event_count) as event_count
    from {{ ref('int_reports__user_event_days') }}
    where {{ report_event_matches('any') }}
    group by user_id, activity_date

),

sequenced as (

    select
        user_id,
        activity_date,
        event_count,
        lag(activity_date) over (partition by user_id order by activity_date) as previous_date,
        min(activity_date) over (partition by user_id) as first_date
    from active_days

),

presence_changes as (

    {%- for column, days in windows.items() %}
    -- {{ column }}: present from the first day this active day newly covers, absent {{ days }} days after it
    select
        '{{ column }}' as measure,
        case
            when previous_date is null or {{ dbt.dateadd('day', days, 'previous_date') }} <= activity_date
                then activity_date
            else cast({{ dbt.dateadd('day', days, 'previous_date') }} as date)
        end as change_date,
        1 as change
    from sequenced
    union all
    select
        '{{ column }}' as measure,
        cast({{ dbt.dateadd('day', days, 'activity_date') }} as date) as change_date,
        -1 as change
    from sequenced
    {{ 'union all' if not loop.last }}
    {%- endfor %}

),

daily_changes as (

    select
        change_date,
        {%- for column in windows %}
        sum(case when measure = '{{ column }}' then change else 0 end) as {{ column }}_change
        {{- ',' if not loop.last }}
        {%- endfor %}
    from presence_changes
    group by change_date

),

daily_activity as (

    select
        activity_date,
        sum(case when activity_date = first_date then 1 else 0 end) as new_users,
        sum(event_count) as events
    from sequenced
    group by activity_date

),

days as (

    {{ report_spine('(select min(activity_date) from active_days)', '(select evaluated_at from as_of)') }}
    cross join as_of
    -- every day that had begun by the as-of instant; a midnight as-of ends with the day before
    where cast(spine.period_start as timestamp) < as_of.evaluated_at

),

final as (

    select
        days.period_start as activity_date,
        {%- for column in windows %}
        sum(coalesce(daily_changes.{{ column }}_change, 0)) over (
            order by days.period_start rows between unbounded preceding and current row
        ) as {{ column }},
        {%- endfor %}
        coalesce(daily_activity.new_users, 0) as new_users,
        coalesce(daily_activity.events, 0) as events,
        {{ dbt.dateadd('day', 1, 'days.period_start') }} > as_of.evaluated_at as is_partial_day,
        as_of.evaluated_at
    from days
    cross join as_of
    left join daily_changes on days.period_start = daily_changes.change_date
    left join daily_activity on days.period_start = daily_activity.activity_date

)

select
    activity_date,
    cast(dau as {{ dbt.type_bigint() }}) as dau,
    cast(wau as {{ dbt.type_bigint() }}) as wau,
    cast(mau as {{ dbt.type_bigint() }}) as mau,
    round(cast(dau as {{ dbt.type_numeric() }}) / nullif(mau, 0), 6) as stickiness,
    cast(new_users as {{ dbt.type_bigint() }}) as new_users,
    cast(dau - new_users as {{ dbt.type_bigint() }}) as returning_users,
    cast(events as {{ dbt.type_bigint() }}) as events,
    is_partial_day,
    evaluated_at
from final
