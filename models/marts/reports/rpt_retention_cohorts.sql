-- Cohort retention, one set of rows per [first_event, return_event] pair of var
-- rekindle_retention_event_pairs and per grain (week, month). A user's first first_event puts them in the
-- cohort of that period; they are retained in period n (0 = the cohort's own period) when they did a
-- return_event in it. `any` is any event that makes a user active (var rekindle_engagement_excluded_events
-- lists those that do not). Weeks start on Monday (ISO), periods are UTC calendar weeks and months.
{%- set pairs = var('rekindle_retention_event_pairs') %}
{%- for pair in pairs %}
    {%- if pair is string or pair | length != 2 or not (pair[0] is string and pair[1] is string) %}
        {{ exceptions.raise_compiler_error(
            'var rekindle_retention_event_pairs: entry ' ~ loop.index ~ ' must be [first_event, return_event]'
            ~ ' (event names or "any"), got ' ~ pair) }}
    {%- endif %}
{%- endfor %}
{%- set grains = ['week', 'month'] %}


with

as_of as (

    select {{ rekindle_as_of() }} as evaluated_at

),

user_event_days as (

    select * from {{ ref('int_reports__user_event_days') }}

),

{%- for pair in pairs %}
{%- set p = loop.index %}

first_days_{{ p }} as (

    select
        user_id,
        min(activity_date) as first_date
    from user_event_days
    where {{ report_event_matches(pair[0]) }}
    group by user_id

),

return_days_{{ p }} as (

    select distinct
        user_id,
        activity_date
    from user_event_days
    where {{ report_event_matches(pair[1]) }}

),

{%- for grain in grains %}

cohorts_{{ p }}_{{ grain }} as (

    select
        user_id,
        {{ report_period_start('first_date', grain) }} as cohort_start
    from first_days_{{ p }}

),

retained_{{ p }}_{{ grain }} as (

    select
        cohorts.cohort_start,
        returns.period_start,
        count(distinct cohorts.user_id) as retained_users
    from cohorts_{{ p }}_{{ grain }} as cohorts
    inner join (
        select distinct
            user_id,
            {{ report_period_start('activity_date', grain) }} as period_start
        from return_days_{{ p }}
    ) as returns
        on cohorts.user_id = returns.user_id and returns.period_start >= cohorts.cohort_start
    group by cohorts.cohort_start, returns.period_start

),

cohort_sizes_{{ p }}_{{ grain }} as (

    select
        cohort_start,
        count(*) as cohort_users
    from cohorts_{{ p }}_{{ grain }}
    group by cohort_start

),

periods_{{ p }}_{{ grain }} as (

    {{ report_spine(
        '(select min(cohort_start) from cohorts_' ~ p ~ '_' ~ grain ~ ')',
        '(select evaluated_at from as_of)',
        grain
    ) }}

),

rows_{{ p }}_{{ grain }} as (

    select
        {{ segment_literal(pair[0]) }} as first_event,
        {{ segment_literal(pair[1]) }} as return_event,
        '{{ grain }}' as cohort_grain,
        sizes.cohort_start,
        {{ report_periods_between('sizes.cohort_start', 'periods.period_start', grain) }} as period_number,
        periods.period_start,
        sizes.cohort_users,
        coalesce(retained.retained_users, 0) as retained_users,
        {{ dbt.dateadd(grain, 1, 'periods.period_start') }} <= as_of.evaluated_at as is_complete_period,
        as_of.evaluated_at
    from cohort_sizes_{{ p }}_{{ grain }} as sizes
    cross join as_of
    inner join periods_{{ p }}_{{ grain }} as periods
        on
            periods.period_start >= sizes.cohort_start
            -- periods that had begun by the as-of instant
            and cast(periods.period_start as timestamp) < as_of.evaluated_at
    left join retained_{{ p }}_{{ grain }} as retained
        on sizes.cohort_start = retained.cohort_start and periods.period_start = retained.period_start

),
{%- endfor %}
{%- endfor %}

unioned as (

    {%- for pair in pairs %}
    {%- set p = loop.index %}
    {%- set last_pair = loop.last %}
    {%- for grain in grains %}
    select * from rows_{{ p }}_{{ grain }}
    {{ 'union all' if not (last_pair and loop.last) }}
    {%- endfor %}
    {%- endfor %}

),

final as (

    select
        first_event,
        return_event,
        cohort_grain,
        cohort_start,
        period_number,
        period_start,
        cast(cohort_users as {{ dbt.type_bigint() }}) as cohort_users,
        cast(retained_users as {{ dbt.type_bigint() }}) as retained_users,
        round(cast(retained_users as {{ dbt.type_numeric() }}) / cohort_users, 6) as retention_rate,
        is_complete_period,
        evaluated_at
    from unioned

)

select * from final
