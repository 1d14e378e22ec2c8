-- One row per user, UTC day and report event with the user's events of it that day and the user's previous
-- day with it. The report events are `any` (any event that makes a user active: every event except those
-- in var rekindle_engagement_excluded_events) and each event named in var rekindle_retention_event_pairs.
-- rpt_engagement_daily counts the `any` rows, and int_reports__user_cohort_periods reads a user's rows
-- here, about a third of their user-days, instead of the user-days themselves. A user with events but none
-- of these (notifications only) keeps one row with a null report event, so that every user of
-- int_reports__user_event_days has a row and the table's maxima of last_event_at and loaded_at are exact
-- watermarks.
--
-- Incremental by user: a new day changes the previous day of the user's next one, so a run replaces every
-- row of the users whose user-days int_reports__user_event_days replaced (macros/report_touched_users.sql),
-- and everyone when the as-of instant moved back or the rows were computed from other excluded events or
-- pairs' events (definitions_digest). A touched user left with no user-days gets a placeholder (null
-- last_event_at) that delete+insert uses and a post-hook deletes. tests/test_incremental.py holds it equal
-- to a full refresh.
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
{%- set report_events = ['any'] %}
{%- for pair in report_event_pairs() %}{% for event in pair if event not in report_events %}
    {%- do report_events.append(event) %}
{%- endfor %}{% endfor %}
{%- set digest = local_md5(tojson([var('rekindle_engagement_excluded_events'), report_events])) %}

with

{% if is_incremental() %}
{{ report_touched_users(digest, ref('int_reports__user_event_days')) }}

{% endif %}

user_event_days as (

    select
        user_id,
        event_name,
        activity_date,
        event_count,
        last_event_at,
        loaded_at
    from {{ ref('int_reports__user_event_days') }}
    {%- if is_incremental() %}
    where user_id in (select touched_users.user_id from touched_users)
    {%- endif %}

),

-- the user's latest event and load over all their user-days (every event is in one)
users as (

    select
        user_id,
        max(last_event_at) as last_event_at,
        max(loaded_at) as loaded_at
    from user_event_days
    group by user_id

),

report_days as (

    {%- for event in report_events %}
        select
            user_id,
            {{ segment_literal(event) }} as report_event,
            activity_date,
            sum(event_count) as event_count
        from user_event_days
        where {{ report_event_matches(event) }}
        group by user_id, activity_date
        {{ 'union all' if not loop.last }}
    {%- endfor %}

),

final as (

    select
        report_days.user_id,
        report_days.report_event,
        report_days.activity_date,
        cast(report_days.event_count as {{ dbt.type_bigint() }}) as event_count,
        lag(report_days.activity_date) over (
            partition by report_days.user_id, report_days.report_event order by report_days.activity_date
        ) as previous_date,
        users.last_event_at,
        users.loaded_at,
        {{ segment_literal(digest) }} as definitions_digest
    from report_days
    inner join users on report_days.user_id = users.user_id
    union all
    -- a user with no report event (see the top)
    select
        users.user_id,
        cast(null as {{ dbt.type_string() }}) as report_event,
        cast(null as date) as activity_date,
        cast(null as {{ dbt.type_bigint() }}) as event_count,
        cast(null as date) as previous_date,
        users.last_event_at,
        users.loaded_at,
        {{ segment_literal(digest) }} as definitions_digest
    from users
    where
        not exists (
            select 1
            from report_days
            where report_days.user_id = users.user_id
        )
    {%- if is_incremental() %}
    union all
    -- placeholders for touched users left with no user-days: removed by the post-hook
    select
        touched_users.user_id,
        cast(null as {{ dbt.type_string() }}) as report_event,
        cast(null as date) as activity_date,
        cast(null as {{ dbt.type_bigint() }}) as event_count,
        cast(null as date) as previous_date,
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
