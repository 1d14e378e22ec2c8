-- One row per user and day on which the user was active (did an event that is not in var
-- rekindle_engagement_excluded_events), with the active events and the user's previous active day:
-- rpt_engagement_daily counts these rows instead of grouping and sorting millions of user-days on every run.
-- A user with events but no active day (notifications only) keeps one row with a null day, so that every
-- user of int_reports__user_event_days has a row and the table's maxima of last_event_at and loaded_at are
-- exact watermarks.
--
-- Incremental by user: a new active day changes the previous day of the user's next one, so a run replaces
-- every row of the users whose user-days int_reports__user_event_days replaced
-- (macros/report_touched_users.sql), and everyone when the as-of instant moved back or the rows were
-- computed from other excluded events (definitions_digest). A touched user left with no user-days gets a
-- placeholder (null last_event_at) that delete+insert uses and a post-hook deletes.
-- tests/test_incremental.py holds it equal to a full refresh.
-- The incremental filter reads these too (macros/incremental_scope.sql):
-- depends_on: {{ ref('int_identity__device_switches') }}
-- depends_on: {{ ref('int_identity__device_owners') }}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='user_id',
    post_hook=["delete from {{ this }} where last_event_at is null"],
) }}
{%- set digest = local_md5(tojson(var('rekindle_engagement_excluded_events'))) %}

with

{% if is_incremental() %}
{{ report_touched_users(digest) }}

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

active_days as (

    select
        user_id,
        activity_date,
        sum(event_count) as event_count
    from user_event_days
    where {{ report_event_matches('any') }}
    group by user_id, activity_date

),

final as (

    select
        active_days.user_id,
        active_days.activity_date,
        cast(active_days.event_count as {{ dbt.type_bigint() }}) as event_count,
        lag(active_days.activity_date) over (
            partition by active_days.user_id order by active_days.activity_date
        ) as previous_active_date,
        users.last_event_at,
        users.loaded_at,
        {{ segment_literal(digest) }} as definitions_digest
    from active_days
    inner join users on active_days.user_id = users.user_id
    union all
    -- a user with no active day (see the top)
    select
        users.user_id,
        cast(null as date) as activity_date,
        cast(null as {{ dbt.type_bigint() }}) as event_count,
        cast(null as date) as previous_active_date,
        users.last_event_at,
        users.loaded_at,
        {{ segment_literal(digest) }} as definitions_digest
    from users
    where
        not exists (
            select 1
            from active_days
            where active_days.user_id = users.user_id
        )
    {%- if is_incremental() %}
    union all
    -- placeholders for touched users left with no user-days: removed by the post-hook
    select
        touched_users.user_id,
        cast(null as date) as activity_date,
        cast(null as {{ dbt.type_bigint() }}) as event_count,
        cast(null as date) as previous_active_date,
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
