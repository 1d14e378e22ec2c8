-- Cohort retention for every [first_event, return_event] pair of var rekindle_retention_event_pairs and both
-- grains. A user's first first_event puts them in the cohort of that week (from Monday) or month; they are
-- retained in period n (0 = the cohort's own) when they did a return_event in it. `any` is any event that
-- makes a user active (var rekindle_engagement_excluded_events lists those that do not). Periods are UTC.
-- The cohorts and return periods of each user come from int_reports__user_cohort_periods (incremental by
-- user); what moves with the as-of instant (the periods that had begun, is_complete_period) is decided here.

with

as_of as (

    select {{ rekindle_as_of() }} as evaluated_at

),

grains as (

    select 'week' as cohort_grain
    union all
    select 'month' as cohort_grain

),

cohort_periods as (

    -- one row per user, pair, grain and period (see the model): counting them is the report
    select * from {{ ref('int_reports__user_cohort_periods') }}
    where first_event is not null

),

cohort_sizes as (

    select
        first_event,
        return_event,
        cohort_grain,
        cohort_start,
        count(*) as cohort_users
    from cohort_periods
    where period_start = cohort_start
    group by first_event, return_event, cohort_grain, cohort_start

),

retained as (

    select
        first_event,
        return_event,
        cohort_grain,
        cohort_start,
        period_start,
        count(*) as retained_users
    from cohort_periods
    where is_retained
    group by first_event, return_event, cohort_grain, cohort_start, period_start

),

days as (

    {{ report_spine('(select min(cohort_start) from cohort_sizes)', '(select evaluated_at from as_of)') }}

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
