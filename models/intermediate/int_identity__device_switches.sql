-- The moments a device's logged-in identity changed (a login by a new identity), up to the as-of
-- instant. Anonymous history on a device belongs to the identity logged in at that time, or, before
-- any login, to the first identity that ever logged in there (CleverTap's retroactive adoption).
with

events as (

    select
        device_id,
        identity,
        event_at as seen_at
    from {{ ref('stg_clevertap__events') }}
    where identity is not null and device_id is not null and event_at <= {{ rekindle_as_of() }}

),

profiles as (

    select
        device_id,
        identity,
        updated_at as seen_at
    from {{ ref('stg_clevertap__profiles') }}
    where identity is not null and device_id is not null and updated_at <= {{ rekindle_as_of() }}

),

logins as (

    select * from events
    union all
    select * from profiles

),

ordered as (

    select
        device_id,
        identity,
        seen_at,
        lag(identity) over (partition by device_id order by seen_at, identity) as previous_identity
    from logins

),

switches as (

    select
        device_id,
        identity,
        seen_at as switched_at
    from ordered
    where previous_identity is null or previous_identity <> identity

),

final as (

    select
        device_id,
        identity,
        switched_at,
        row_number() over (partition by device_id order by switched_at, identity) as switch_number
    from switches

)

select * from final
