-- Each user's retention cohorts, one row per [first_event, return_event] pair of var
-- rekindle_retention_event_pairs, cohort grain (week from Monday, month; UTC) and period: the cohort's own
-- (the period of the user's first first_event), and every later one in which the user did a return_event.
-- rpt_retention_cohorts only counts these rows, instead of finding first days and distinct return periods
-- among millions of user-days on every run. Read from int_reports__user_report_days (the days of each event
-- a pair names). A user with events but in no cohort (notifications only) keeps one row with a null pair,
-- so that every user of int_reports__user_event_days has a row and the table's maxima of last_event_at and
-- loaded_at are exact watermarks.
--
-- Incremental by user: a user's rows depend on all their days (the first first_event may move), so a
-- run replaces every row of the users whose report days int_reports__user_report_days replaced
-- (macros/report_touched_users.sql), and everyone when the as-of instant moved back or the rows were
-- computed from other pairs or excluded events (definitions_digest). A touched user left with no user-days
-- (so no report days) gets a placeholder (null last_event_at) that delete+insert uses and a post-hook
-- deletes. tests/test_incremental.py holds it equal to a full refresh.
-- The incremental filter reads these too (macros/incremental_scope.sql):
-- depends_on: {{ ref('int_identity__device_switches') }}
-- depends_on: {{ ref('int_identity__device_owners') }}
-- rekindle_as_of() reads the latest event when no as-of instant is given (dbt docs, ad-hoc runs):
-- depends_on: {{ ref('stg_clevertap__events') }}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='user_id',
    post_hook=["delete from {{ this }} where last_event_at is null"],
) }}
{%- set pairs = report_event_pairs() %}
{%- set digest = local_md5(tojson([pairs, var('rekindle_engagement_excluded_events')])) %}

with

{% if is_incremental() %}
{{ report_touched_users(digest, ref('int_reports__user_report_days')) }}

{% endif %}

report_days as (

    select
        user_id,
        report_event,
        activity_date,
        last_event_at,
        loaded_at
    from {{ ref('int_reports__user_report_days') }}
    {%- if is_incremental() %}
    where user_id in (select touched_users.user_id from touched_users)
    {%- endif %}

),

-- the user's latest event and load (every report day of the user holds them)
users as (

    select
        user_id,
        max(last_event_at) as last_event_at,
        max(loaded_at) as loaded_at
    from report_days
    group by user_id

),

grains as (

    select 'week' as cohort_grain
    union all
    select 'month' as cohort_grain

),
{% for pair in pairs %}
    {%- set p = loop.index %}

    -- the period of the user's first first_event, in each grain
    pair_{{ p }}_cohorts as (

        select
            report_days.user_id,
            grains.cohort_grain,
            case
                when grains.cohort_grain = 'week'
                    then {{ report_period_start('min(report_days.activity_date)', 'week') }}
                else {{ report_period_start('min(report_days.activity_date)', 'month') }}
            end as cohort_start
        from report_days
        cross join grains
        where report_days.report_event = {{ segment_literal(pair[0]) }}
        group by report_days.user_id, grains.cohort_grain

    ),

    -- the periods in which the user did a return_event
    pair_{{ p }}_returns as (

        select distinct
            report_days.user_id,
            grains.cohort_grain,
            case
                when grains.cohort_grain = 'week'
                    then {{ report_period_start('report_days.activity_date', 'week') }}
                else {{ report_period_start('report_days.activity_date', 'month') }}
            end as period_start
        from report_days
        cross join grains
        where report_days.report_event = {{ segment_literal(pair[1]) }}

    ),

    pair_{{ p }} as (

        -- the periods from the cohort's own on in which the user returned
        select
            cohorts.user_id,
            cohorts.cohort_grain,
            cohorts.cohort_start,
            return_periods.period_start,
            true as is_retained
        from pair_{{ p }}_cohorts as cohorts
        inner join pair_{{ p }}_returns as return_periods
            on
                cohorts.user_id = return_periods.user_id
                and cohorts.cohort_grain = return_periods.cohort_grain
                and cohorts.cohort_start <= return_periods.period_start
        union all
        -- the cohort's own period when the user did no return_event in it (with a different first_event)
        select
            cohorts.user_id,
            cohorts.cohort_grain,
            cohorts.cohort_start,
            cohorts.cohort_start as period_start,
            false as is_retained
        from pair_{{ p }}_cohorts as cohorts
        where
            not exists (
                select 1
                from pair_{{ p }}_returns as return_periods
                where
                    return_periods.user_id = cohorts.user_id
                    and return_periods.cohort_grain = cohorts.cohort_grain
                    and return_periods.period_start = cohorts.cohort_start
            )

    ),
{% endfor %}
cohort_periods as (

    {%- for pair in pairs %}
        select
            user_id,
            {{ segment_literal(pair[0]) }} as first_event,
            {{ segment_literal(pair[1]) }} as return_event,
            cohort_grain,
            cohort_start,
            period_start,
            is_retained
        from pair_{{ loop.index }}
        {{ 'union all' if not loop.last }}
    {%- endfor %}

),

final as (

    select
        cohort_periods.user_id,
        cohort_periods.first_event,
        cohort_periods.return_event,
        cohort_periods.cohort_grain,
        cohort_periods.cohort_start,
        cohort_periods.period_start,
        cohort_periods.is_retained,
        users.last_event_at,
        users.loaded_at,
        {{ segment_literal(digest) }} as definitions_digest
    from cohort_periods
    inner join users on cohort_periods.user_id = users.user_id
    union all
    -- a user in no cohort (see the top)
    select
        users.user_id,
        cast(null as {{ dbt.type_string() }}) as first_event,
        cast(null as {{ dbt.type_string() }}) as return_event,
        cast(null as {{ dbt.type_string() }}) as cohort_grain,
        cast(null as date) as cohort_start,
        cast(null as date) as period_start,
        cast(null as boolean) as is_retained,
        users.last_event_at,
        users.loaded_at,
        {{ segment_literal(digest) }} as definitions_digest
    from users
    where
        not exists (
            select 1
            from cohort_periods
            where cohort_periods.user_id = users.user_id
        )
    {%- if is_incremental() %}
    union all
    -- placeholders for touched users left with no user-days: removed by the post-hook
    select
        touched_users.user_id,
        cast(null as {{ dbt.type_string() }}) as first_event,
        cast(null as {{ dbt.type_string() }}) as return_event,
        cast(null as {{ dbt.type_string() }}) as cohort_grain,
        cast(null as date) as cohort_start,
        cast(null as date) as period_start,
        cast(null as boolean) as is_retained,
        cast(null as {{ dbt.type_timestamp() }}) as last_event_at,
        cast(null as {{ dbt.type_timestamp() }}) as loaded_at,
        {{ segment_literal(digest) }} as definitions_digest
    from touched_users
    where
        not exists (
            select 1
            from users
            where users.user_id = touched_users.user_id
        )
    {%- endif %}

)

select * from final
