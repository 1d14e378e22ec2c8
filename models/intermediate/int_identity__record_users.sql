-- A table, not a view: marts read it several times, and Postgres' planner misjudges the view stack
-- (a nested loop that reran identity resolution per order made fct_orders 1,000x slower).
{{ config(materialized='table') }}

-- The user every event and profile record belongs to. One place decides identity for both, so an
-- event and a profile update from the same anonymous device always land on the same user.
with

records as (

    select
        event_key as record_key,
        'event' as record_kind,
        identity,
        device_id,
        event_at as record_at
    from {{ ref('stg_clevertap__events') }}
    where event_at <= {{ rekindle_as_of() }}
    union all
    select
        profile_key as record_key,
        'profile' as record_kind,
        identity,
        device_id,
        updated_at as record_at
    from {{ ref('stg_clevertap__profiles') }}
    where updated_at <= {{ rekindle_as_of() }}

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
    from records
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
        end as resolved_by
    from records
    left join latest_login_before
        on records.record_key = latest_login_before.record_key and latest_login_before.recency = 1
    left join first_login
        on records.device_id = first_login.device_id
    -- a record whose only ids were junk belongs to nobody; it stays in raw.events for audit
    where coalesce(records.identity, records.device_id) is not null

)

select * from final
