{#- A query (device_id, user_id) of everyone who owns or owned records on a device whose identity history
    changed, inside `{% if is_incremental() %}` after incremental_scope: records there may have moved
    between users, and a past owner logged in on the device, so it is among the device's record owners, or
    is its anon: user. The owners come from int_identity__device_owners (a row per device and user), not
    from a scan of every record; the anon: user is added here because a device's first login takes it out
    of that table. -#}
{% macro reresolved_device_owners() %}
    select
        owners.device_id,
        owners.user_id
    from {{ ref('int_identity__device_owners') }} as owners
    where owners.device_id in (select changed_devices.device_id from changed_devices)
    union
    select
        device_id,
        'anon:' || device_id as user_id
    from changed_devices
{% endmacro %}

{#- A query (user_id) of the users an incremental run must recompute from all their records: the owners of
    re-resolved devices (reresolved_device_owners), and on a rerun of an earlier day everyone the model
    holds, including users with no records that early. -#}
{% macro incremental_reresolved_users() %}
    select reresolved.user_id from ({{ reresolved_device_owners() }}) as reresolved
    union
    select held.user_id from {{ this }} as held
    where (select watermark.as_of_moved_back from watermark)
{% endmacro %}
