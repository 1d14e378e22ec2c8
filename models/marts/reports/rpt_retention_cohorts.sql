-- Cohort retention for every [first_event, return_event] pair of var rekindle_retention_event_pairs and both
-- grains. A user's first first_event puts them in the cohort of that week (from Monday) or month; they are
-- retained in period n (0 = the cohort's own) when they did a return_event in it. `any` is any event that
-- makes a user active (var rekindle_engagement_excluded_events lists those that do not). Periods are UTC.

with

as_of as (

    select {{ rekindle_as_of() }} as evaluated_at

),

event_pairs as (

    {{ report_event_pairs() }}

),

grains as (

    select 'week' as cohort_grain
    union all
    select 'month' as cohort_grain

),

user_event_days as (

    select * from {{ ref('int_reports__user_event_days') }}

),

first_days as (

    select
        event_pairs.first_event,
        event_pairs.return_event,
        user_event_days.user_id,
        min(user_event_days.activity_date) as first_date
    from user_event_days
    inner join event_pairs
        on
            user_event_days.event_name = event_pairs.first_event
            or (event_pairs.first_event = 'any' and {{ report_event_matches('any', 'user_event_days.event_name') }})
    group by event_pairs.first_event, event_pairs.return_event, user_event_days.user_id

),

return_days as (

    select distinct
        event_pairs.first_event,
        event_pairs.return_event,
        user_event_days.user_id,
        user_event_days.activity_date
    from user_event_days
    inner join event_pairs
        on
            user_event_days.event_name = event_pairs.return_event
            or (event_pairs.return_event = 'any' and {{ report_event_matches('any', 'user_event_days.event_name') }})

),

cohorts as (

    select
        first_days.first_event,
        first_days.return_event,
        grains.cohort_grain,
        first_days.user_id,
        case
            when grains.cohort_grain = 'week' then {{ report_period_start('first_days.first_date', 'week') }}
            else {{ report_period_start('first_days.first_date', 'month') }}
        end as cohort_start
    from first_days
    cross join grains

),

returns as (

    select distinct
        return_days.first_event,
        return_days.return_event,
        grains.cohort_grain,
        return_days.user_id,
        case
            when grains.cohort_grain = 'week' then {{ report_period_start('return_days.activity_date', 'week') }}
            else {{ report_period_start('return_days.activity_date', 'month') }}
        end as period_start
    from return_days
    cross join grains

),

retained as (

    select
        cohorts.first_event,
        cohorts.return_event,
        cohorts.cohort_grain,
        cohorts.cohort_start,
        returns.period_start,
        count(*) as retained_users
    from cohorts
    inner join returns
        on
            cohorts.first_event = returns.first_event
            and cohorts.return_event = returns.return_event
            and cohorts.cohort_grain = returns.cohort_grain
            and cohorts.user_id = returns.user_id
            and cohorts.cohort_start <= returns.period_start
    group by
        cohorts.first_event, cohorts.return_event, cohorts.cohort_grain, cohorts.cohort_start, returns.period_start

),

cohort_sizes as (

    select
        first_event,
        return_event,
        cohort_grain,
        cohort_start,
        count(*) as cohort_users
    from cohorts
    group by first_event, return_event, cohort_grain, cohort_start

),

days as (

    {{ report_spine('(select min(first_date) from first_days)', '(select evaluated_at from as_of)') }}

),

-- every week and month that had begun by the as-of instant
periods as (

    select distinct
        grains.cohort_grain,
        case
            when grains.cohort_grain = 'week' then {{ report_period_start('days.period_start', 'week') }}
            else {{ report_period_start('days.period_start', 'month') }}
        end as period_start
    from days
    cross join grains
    cross join as_of
    where cast(days.period_start as timestamp) < as_of.evaluated_at

),

final as (

    select
        cohort_sizes.first_event,
        cohort_sizes.return_event,
        cohort_sizes.cohort_grain,
        cohort_sizes.cohort_start,
        case
            when cohort_sizes.cohort_grain = 'week'
                then {{ report_periods_between('cohort_sizes.cohort_start', 'periods.period_start', 'week') }}
            else {{ report_periods_between('cohort_sizes.cohort_start', 'periods.period_start', 'month') }}
        end as period_number,
        periods.period_start,
        cast(cohort_sizes.cohort_users as {{ dbt.type_bigint() }}) as cohort_users,
        cast(coalesce(retained.retained_users, 0) as {{ dbt.type_bigint() }}) as retained_users,
        {{ report_ratio('coalesce(retained.retained_users, 0)', 'cohort_sizes.cohort_users') }} as retention_rate,
        case
            when cohort_sizes.cohort_grain = 'week'
                then {{ dbt.dateadd('week', 1, 'periods.period_start') }} <= as_of.evaluated_at
            else {{ dbt.dateadd('month', 1, 'periods.period_start') }} <= as_of.evaluated_at
        end as is_complete_period,
        as_of.evaluated_at
    from cohort_sizes
    cross join as_of
    inner join periods
        on
            cohort_sizes.cohort_grain = periods.cohort_grain
            and cohort_sizes.cohort_start <= periods.period_start
    left join retained
        on
            cohort_sizes.first_event = retained.first_event
            and cohort_sizes.return_event = retained.return_event
            and cohort_sizes.cohort_grain = retained.cohort_grain
            and cohort_sizes.cohort_start = retained.cohort_start
            and periods.period_start = retained.period_start

)

select * from final
