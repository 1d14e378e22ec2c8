{#- The incremental filter shared by the identity-aware models: true for a record an incremental run
    must (re)compute. Needs the CTEs `watermark` and `changed_devices` (incremental_scope) and
    `cross join watermark` in the query. -#}
{% macro incremental_in_scope(loaded_at, record_at, device_id) %}
    (
        watermark.as_of_moved_back
        or {{ loaded_at }} > watermark.loaded_since
        or {{ record_at }} > watermark.record_since
        or {{ device_id }} in (select changed_devices.device_id from changed_devices)
    )
{% endmacro %}
