-- One row per user, event name and day: the one scan of fct_events that the engagement and retention
-- reports share. Days are UTC dates. The reports work on user-days instead of joining events to events.
--
-- Incremental by (user, day): a run recomputes the user-days its new events fall on, with the same scope
-- as fct_events (macros/incremental_scope.sql: new loads, newly visible events, devices whose identity
-- history changed) read from int_identity__record_users by resolved_loaded_at. A re-resolved device moves events between users: the days
-- of its events are recomputed for every user who owns or owned records there (the old owner logged in on
-- the device, so it is among its record owners, or is its anon: user; see fct_sessions). A touched
-- user-day left with no events gets a placeholder row (null event_name) so that delete+insert removes its
-- old rows; a post-hook deletes the placeholders, another the rows after the as-of instant (a rerun of an
-- earlier day recomputes everything). tests/test_incremental.py holds it equal to a full refresh.
-- The incremental filter reads these too (macros/incremental_scope.sql):
-- depends_on: {{ ref('stg_clevertap__events') }}
-- depends_on: {{ ref('stg_clevertap__profiles') }}
-- depends_on: {{ ref('int_identity__device_switches') }}
-- depends_on: {{ ref('int_identity__record_users') }}
-- depends_on: {{ ref('int_identity__device_owners') }}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['user_id', 'activity_date'],
    post_hook=[
        "{{ delete_after_as_of('last_event_at') }}",
        "delete from {{ this }} where event_name is null",
    ],
) }}

with

{% if is_incremental() %}
{{ incremental_scope('last_event_at') }}

-- the events that are new, newly visible or re-resolved, with their (new) users: the same records
-- fct_events took, found by resolved_loaded_at (macros/incremental_resolved_records.sql)
scoped_events as (

    select
        records.user_id,
        records.device_id,
        cast(records.record_at as date) as activity_date
    from (
        {{ incremental_resolved_records(
            'record_users.user_id, record_users.device_id, record_users.record_at', 'last_event_at', 'event'
        ) }}
    ) as records

),

-- everyone who owns or owned records on a re-resolved device, by device
device_owners as (

    {{ reresolved_device_owners() }}

),

touched_days as (

    select
        user_id,
        activity_date
    from scoped_events
    union
    select
        device_owners.user_id,
        scoped_events.activity_date
    from scoped_events
    inner join device_owners on scoped_events.device_id = device_owners.device_id
    union
    -- a rerun of an earlier day re-decides every user-day, including those that no longer exist
    select
        user_days.user_id,
        user_days.activity_date
    from {{ this }} as user_days
    where (select watermark.as_of_moved_back from watermark)

),
{% endif %}

events as (

    select
        user_id,
        event_name,
        cast(event_at as date) as activity_date,
        event_at,
        loaded_at
    from {{ ref('fct_events') }}

),

{% if is_incremental() %}
-- a semi-join, not an inner join: DuckDB misjudged touched_days as the larger side and hashed every event
-- (most of this model's incremental cost at 10 million events)
touched_events as (

    select events.*
    from events
    where exists (
        select 1
        from touched_days
        where touched_days.user_id = events.user_id and touched_days.activity_date = events.activity_date
    )

),
{% endif %}

final as (

    select
        user_id,
        event_name,
        activity_date,
        count(*) as event_count,
        max(event_at) as last_event_at,
        max(loaded_at) as loaded_at
    from {{ 'touched_events' if is_incremental() else 'events' }}
    group by user_id, event_name, activity_date

)

select * from final
{% if is_incremental() %}
    union all
    -- placeholders for touched user-days left with no events (see the top): removed by the post-hook
    select
        touched_days.user_id,
        null as event_name,
        touched_days.activity_date,
        null as event_count,
        null as last_event_at,
        null as loaded_at
    from touched_days
    where not exists (
        select 1
        from touched_events
        where touched_events.user_id = touched_days.user_id and touched_events.activity_date = touched_days.activity_date
    )
{% endif %}
