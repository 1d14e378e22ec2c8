{#- A query (user_id) of the users an incremental run must recompute from all their records, inside
    `{% if is_incremental() %}` after incremental_scope: everyone who owns or owned records on a device
    whose identity history changed (records there may have moved between users; a past owner logged in
    on the device, so it is among the device's record owners, or is its anon: user), and on a rerun of an
    earlier day everyone the model holds, including users with no records that early. The owners come from
    int_identity__device_owners (a row per device and user), not from a scan of every record; the anon:
    user is added here because a device's first login takes it out of that table. -#}
{% macro incremental_reresolved_users() %}
    select owners.user_id
    from {{ ref('int_identity__device_owners') }} as owners
    where owners.device_id in (select changed_devices.device_id from changed_devices)
    union
    select 'anon:' || device_id from changed_devices
    union
    select held.user_id from {{ this }} as held
    where (select watermark.as_of_moved_back from watermark)
{% endmacro %}
