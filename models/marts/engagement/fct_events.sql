-- Incremental: a run takes the events loaded since its watermark, the events that became visible
-- (up to the as-of instant), and every event of a device whose identity history changed, since any
-- of them may now belong to someone else; they replace their earlier rows by event_key. It finds them
-- in int_identity__record_users, where their resolved_loaded_at or event time passes the watermark
-- (macros/incremental_resolved_records.sql). A test (tests/test_incremental.py) holds this equal to a
-- full refresh row for row.
-- The incremental filter reads these too (macros/incremental_scope.sql):
-- depends_on: {{ ref('stg_clevertap__profiles') }}
-- depends_on: {{ ref('int_identity__device_switches') }}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='event_key',
    post_hook="{{ delete_after_as_of('event_at') }}",
) }}

with

{% if is_incremental() %}
{{ incremental_scope('event_at') }}
{% endif %}

record_users as (

    {% if is_incremental() %}
        {{ incremental_resolved_records(
            'record_users.record_key, record_users.user_id, record_users.resolved_by', 'event_at', 'event'
        ) }}
    {% else %}
        select
            record_key,
            user_id,
            resolved_by
        from {{ ref('int_identity__record_users') }}
        where record_kind = 'event'
    {% endif %}

),

events as (

    select events.*
    from {{ ref('stg_clevertap__events') }} as events
    {% if is_incremental() %}
        where events.event_key in (select record_users.record_key from record_users)
    {% endif %}

),

final as (

    select
        events.event_key,
        record_users.user_id,
        events.event_name,
        events.event_at,
        events.identity,
        events.device_id,
        record_users.resolved_by,
        events.amount,
        events.charged_id,
        events.campaign_id,
        events.campaign_type,
        events.properties,
        events.loaded_at
    from events
    -- the inner join also applies the as-of cut and drops junk-only events (record_users has neither)
    inner join record_users on events.event_key = record_users.record_key

)

select * from final
{% if not is_incremental() %}
    -- one day's events in a few row groups, as incremental runs leave them: the models that read the recent
    -- events of touched users skip the rest (macros/zone_map_order.sql)
    {{ zone_map_order('final.event_at') }}
{% endif %}
