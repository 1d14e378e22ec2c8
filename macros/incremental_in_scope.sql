{#- The incremental filter shared by the identity-aware models: true for a record an incremental run
    must (re)compute. Needs the CTEs `watermark` and `changed_devices` (incremental_scope) and
    `cross join watermark` in the query. Without device_id it leaves out the re-resolved devices: for a
    query that adds their owners from int_identity__device_owners anyway (the users of a device's records
    are its owners), so it need not find their records among all records. -#}
{% macro incremental_in_scope(loaded_at, record_at, device_id=none) %}
    (
        watermark.as_of_moved_back
        or {{ loaded_at }} > watermark.loaded_since
        or {{ record_at }} > watermark.record_since
        {%- if device_id %}
        or {{ device_id }} in (select changed_devices.device_id from changed_devices)
        {%- endif %}
    )
{% endmacro %}
