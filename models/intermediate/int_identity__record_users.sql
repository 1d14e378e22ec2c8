-- A table, not a view: marts read it several times, and Postgres' planner misjudges the view stack
-- (a nested loop that reran identity resolution per order made fct_orders 1,000x slower).
-- Incremental: a run resolves the records loaded since its watermark and every record of a device
-- whose identity history changed (incremental_in_scope), and replaces them by key.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='record_key',
    post_hook="{{ delete_after_as_of('record_at') }}",
) }}

-- The user every event and profile record belongs to. One place decides identity for both, so an
-- event and a profile update from the same anonymous device always land on the same user.
with

{% if is_incremental() %}
{{ incremental_scope('record_at') }}
{% endif %}

all_records as (

    select
        event_key as record_key,
        'event' as record_kind,
        identity,
        device_id,
        event_at as record_at,
        loaded_at
    from {{ ref('stg_clevertap__events') }}
    where event_at <= {{ rekindle_as_of() }}
    union all
    select
        profile_key as record_key,
        'profile' as record_kind,
        identity,
        device_id,
        updated_at as record_at,
        loaded_at
    from {{ ref('stg_clevertap__profiles') }}
    where updated_at <= {{ rekindle_as_of() }}

),

in_scope as (

    select all_records.*
    from all_records
    {% if is_incremental() %}
        cross join watermark
        where {{ incremental_in_scope('all_records.loaded_at', 'all_records.record_at', 'all_records.device_id') }}
    {% endif %}

),

switches as (

    select * from {{ ref('int_identity__device_switches') }}

),

latest_login_before as (

    select
        records.record_key,
        switches.identity,
        row_number() over (
            partition by records.record_key order by switches.switched_at desc, switches.identity desc
        ) as recency
    from in_scope as records
    inner join switches
        on records.device_id = switches.device_id and records.record_at >= switches.switched_at
    where records.identity is null

),

first_login as (

    select
        device_id,
        identity
    from switches
    where switch_number = 1

),

-- the latest load that changed a device's switches: every record on the device was resolved again then
device_logins as (

    select
        device_id,
        max(login_loaded_at) as latest_login_loaded_at
    from switches
    group by device_id

),

final as (

    select
        records.record_key,
        records.record_kind,
        records.device_id,
        records.record_at,
        coalesce(
            records.identity, latest_login_before.identity, first_login.identity, 'anon:' || records.device_id
        ) as user_id,
        case
            when records.identity is not null then 'identity'
            when latest_login_before.identity is not null then 'device_logged_in'
            when first_login.identity is not null then 'device_adopted_before_login'
            when records.device_id is not null then 'anonymous_device'
        end as resolved_by,
        records.loaded_at,
        -- the later of the record's load and its device's latest switch load (see the YAML): the records an
        -- incremental run wrote are exactly those past the watermark, and they sit at the table's end
        case
            when device_logins.latest_login_loaded_at > records.loaded_at then device_logins.latest_login_loaded_at
            else records.loaded_at
        end as resolved_loaded_at
    from in_scope as records
    left join latest_login_before
        on records.record_key = latest_login_before.record_key and latest_login_before.recency = 1
    left join first_login
        on records.device_id = first_login.device_id
    left join device_logins
        on records.device_id = device_logins.device_id
    -- a record whose only ids were junk belongs to nobody; it stays in raw.events for audit
    where coalesce(records.identity, records.device_id) is not null

)

select * from final
