-- Every user who owns records on a device: the (device_id, user_id) pairs of int_identity__record_users,
-- so that the incremental models find the owners of a re-resolved device in a small table instead of
-- scanning every record (macros/incremental_reresolved_users.sql, int_reports__user_event_days, the
-- funnel entries).
--
-- Who owns records on a device: every identity that logged in there (its own records, and the anonymous
-- ones resolved to it) and, while no identity has logged in, the device's anon: user. An identity gets
-- anonymous records only through a switch, that is a login of its own on the device, so every owner has
-- records it owns by itself: its logins there (resolved_by identity), or for anon:<device> the device's
-- anonymous records (resolved_by anonymous_device). first_record_at, last_record_at and loaded_at are
-- taken over those own records, and their not_null tests check that reasoning on every build.
--
-- Incremental by device (delete+insert on device_id): while the as-of instant moves forward, own records
-- are only ever added (an identity's records always belong to it), and the one other change is that the
-- first login on a device takes its anonymous records from anon:<device>. So a run reads the records
-- loaded or made visible since its watermark (not every record of the re-resolved devices: a switch is a
-- new login, so its device is among those), merges each touched device's rows with what they add, and
-- drops anon:<device> from a device that now has an identity. A rerun of an earlier day (the as-of
-- instant moved back) recomputes every device from all records; the post-hook deletes the owners whose
-- records all lie after the as-of instant (devices that no longer exist at that instant).
-- tests/test_incremental.py holds it equal to a full refresh.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='device_id',
    post_hook="{{ delete_after_as_of('first_record_at') }}",
) }}

with

{% if is_incremental() %}
{{ incremental_scope('last_record_at', devices=false) }}
{% endif %}

records as (

    select
        record_users.device_id,
        record_users.user_id,
        record_users.record_at,
        record_users.loaded_at,
        record_users.resolved_by in ('identity', 'anonymous_device') as is_own
    from {{ ref('int_identity__record_users') }} as record_users
    {% if is_incremental() %}
        where
            record_users.device_id is not null
            and {{ incremental_in_scope('record_users.loaded_at', 'record_users.record_at', watermark_of='last_record_at') }}
    {% else %}
        where record_users.device_id is not null
    {% endif %}

),

record_owners as (

    select
        device_id,
        user_id,
        min(case when is_own then record_at end) as first_record_at,
        max(case when is_own then record_at end) as last_record_at,
        max(case when is_own then loaded_at end) as loaded_at
    from records
    group by device_id, user_id

),

{% if is_incremental() %}
-- the rows held for the devices this run touches, with what the run adds to them (on a rerun of an
-- earlier day the held rows may count records after the as-of instant: every device is recomputed)
merged as (

    select
        device_id,
        user_id,
        min(first_record_at) as first_record_at,
        max(last_record_at) as last_record_at,
        max(loaded_at) as loaded_at
    from (
        select * from record_owners
        union all
        select
            held.device_id,
            held.user_id,
            held.first_record_at,
            held.last_record_at,
            held.loaded_at
        from {{ this }} as held
        where
            held.device_id in (select record_owners.device_id from record_owners)
            and not (select watermark.as_of_moved_back from watermark)
    ) as owners
    group by device_id, user_id

),
{% endif %}

owners as (

    select * from {{ 'merged' if is_incremental() else 'record_owners' }}

),

final as (

    select
        owners.device_id,
        owners.user_id,
        owners.first_record_at,
        owners.last_record_at,
        owners.loaded_at
    from owners
    -- a device's first login takes its anonymous records from anon:<device> (a no-op in a full build)
    where not (
        owners.user_id = 'anon:' || owners.device_id
        and owners.device_id in (
            select logged_in.device_id
            from owners as logged_in
            where logged_in.user_id <> 'anon:' || logged_in.device_id
        )
    )

)

select * from final
