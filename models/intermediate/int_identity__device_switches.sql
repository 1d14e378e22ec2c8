-- The moments a device's logged-in identity changed (a login by a new identity), up to the as-of
-- instant. Anonymous history on a device belongs to the identity logged in at that time, or, before
-- any login, to the first identity that ever logged in there (CleverTap's retroactive adoption).
-- Incremental by device: a device with a new login has all its switches recomputed and replaced. When
-- all its new logins come after the latest one it holds (the usual case: time moves forward), its held
-- switches stand in for its older logins (each switch is the login where the identity changed, and the
-- identity logged in last is the last switch's), so the run reads only the new logins; a device with a
-- late login, and every device on a rerun of an earlier day, is recomputed from all its logins.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='device_id',
    post_hook="{{ delete_after_as_of('switched_at') }}",
) }}

-- The CTEs below are not materialized: an incremental run reads the logins three times, each with a
-- filter that DuckDB must push into the scan of staging to read only what it needs.
with

{% if is_incremental() %}
{{ incremental_scope('last_login_at', switches_only=false) }}
{% endif %}

events as not materialized (

    select
        device_id,
        identity,
        event_at as seen_at,
        loaded_at
    from {{ ref('stg_clevertap__events') }}
    where identity is not null and device_id is not null and event_at <= {{ rekindle_as_of() }}

),

profiles as not materialized (

    select
        device_id,
        identity,
        updated_at as seen_at,
        loaded_at
    from {{ ref('stg_clevertap__profiles') }}
    where identity is not null and device_id is not null and updated_at <= {{ rekindle_as_of() }}

),

logins as not materialized (

    select * from events
    union all
    select * from profiles

),

{% if is_incremental() %}
{%- set constants = incremental_watermark('last_login_at') %}
new_logins as (

    select logins.*
    from logins
    where logins.loaded_at > {{ constants.loaded_since }} or logins.seen_at > {{ constants.record_since }}

),

-- the devices with new logins that all come after the device's latest login held (or a device not held yet)
moving_forward as (

    select new_logins.device_id
    from new_logins
    left join (
        select
            device_id,
            max(last_login_at) as last_login_at
        from {{ this }}
        group by device_id
    ) as held on new_logins.device_id = held.device_id
    where not {{ constants.as_of_moved_back }}
    group by new_logins.device_id, held.last_login_at
    having held.last_login_at is null or min(new_logins.seen_at) > held.last_login_at

),
{% endif %}

in_scope as (

    select
        logins.*,
        logins.loaded_at as device_loaded_at
    from logins
    {% if is_incremental() %}
        -- a rerun of an earlier day decides every device again
        where {{ constants.as_of_moved_back }}
    union all
    -- a device with a late login: all its logins (a semi-join, nothing read when there is no such device)
    select
        logins.*,
        logins.loaded_at as device_loaded_at
    from logins
    where
        not {{ constants.as_of_moved_back }}
        and logins.device_id in (
            select changed_devices.device_id
            from changed_devices
            where changed_devices.device_id not in (select moving_forward.device_id from moving_forward)
        )
    union all
    -- a device moving forward: its new logins, and its held switches standing in for the logins before them
    -- (device_loaded_at keeps the device's latest load, which may be a login that was not a switch)
    select
        new_logins.*,
        new_logins.loaded_at as device_loaded_at
    from new_logins
    where new_logins.device_id in (select moving_forward.device_id from moving_forward)
    union all
    select
        held.device_id,
        held.identity,
        held.switched_at as seen_at,
        held.login_loaded_at as loaded_at,
        held.loaded_at as device_loaded_at
    from {{ this }} as held
    where held.device_id in (select moving_forward.device_id from moving_forward)
    {% endif %}

),

-- one row per login instant: records of the same identity on the same device at the same time are one
-- login, loaded when the latest of them was
distinct_logins as (

    select
        device_id,
        identity,
        seen_at,
        max(loaded_at) as loaded_at,
        max(device_loaded_at) as device_loaded_at
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
        max(device_loaded_at) over (partition by device_id) as loaded_at
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
