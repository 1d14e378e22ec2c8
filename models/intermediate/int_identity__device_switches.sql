-- The moments a device's logged-in identity changed (a login by a new identity), up to the as-of
-- instant. Anonymous history on a device belongs to the identity logged in at that time, or, before
-- any login, to the first identity that ever logged in there (CleverTap's retroactive adoption).
-- Incremental by device: a device with a new login has all its switches recomputed and replaced.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='device_id',
    post_hook="{{ delete_after_as_of('switched_at') }}",
) }}

with

{% if is_incremental() %}
{{ incremental_scope('last_login_at', switches_only=false) }}
{% endif %}

events as (

    select
        device_id,
        identity,
        event_at as seen_at,
        loaded_at
    from {{ ref('stg_clevertap__events') }}
    where identity is not null and device_id is not null and event_at <= {{ rekindle_as_of() }}

),

profiles as (

    select
        device_id,
        identity,
        updated_at as seen_at,
        loaded_at
    from {{ ref('stg_clevertap__profiles') }}
    where identity is not null and device_id is not null and updated_at <= {{ rekindle_as_of() }}

),

logins as (

    select * from events
    union all
    select * from profiles

),

in_scope as (

    select logins.*
    from logins
    {% if is_incremental() %}
        cross join watermark
        where watermark.as_of_moved_back or logins.device_id in (select changed_devices.device_id from changed_devices)
    {% endif %}

),

-- one row per login instant: records of the same identity on the same device at the same time are one
-- login, loaded when the latest of them was
distinct_logins as (

    select
        device_id,
        identity,
        seen_at,
        max(loaded_at) as loaded_at
    from in_scope
    group by device_id, identity, seen_at

),

ordered as (

    select
        device_id,
        identity,
        seen_at,
        loaded_at as login_loaded_at,
        lag(identity) over (partition by device_id order by seen_at, identity) as previous_identity,
        max(seen_at) over (partition by device_id) as last_login_at,
        max(loaded_at) over (partition by device_id) as loaded_at
    from distinct_logins

),

switches as (

    select
        device_id,
        identity,
        seen_at as switched_at,
        login_loaded_at,
        last_login_at,
        loaded_at
    from ordered
    where previous_identity is null or previous_identity <> identity

),

final as (

    select
        device_id,
        identity,
        switched_at,
        row_number() over (partition by device_id order by switched_at, identity) as switch_number,
        login_loaded_at,
        last_login_at,
        loaded_at
    from switches

)

select * from final
