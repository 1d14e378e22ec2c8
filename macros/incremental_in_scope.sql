{#- The incremental filter shared by the identity-aware models: true for a record an incremental run
    must (re)compute. Needs the CTEs `watermark` and `changed_devices` (incremental_scope) and
    `cross join watermark` in the query. Without device_id it leaves out the re-resolved devices: for a
    query that adds their owners from int_identity__device_owners anyway (the users of a device's records
    are its owners), so it need not find their records among all records. With watermark_of (the model's
    record-time column, as given to incremental_scope) the watermark enters as constants instead of the
    CTE's columns, so that DuckDB can skip row groups (incremental_constant): only where no changed-device
    test is or'ed in, which would make it read every row anyway. -#}
{% macro incremental_in_scope(loaded_at, record_at, device_id=none, watermark_of=none) %}
    {%- set constants = incremental_watermark(watermark_of) if watermark_of else {
        'loaded_since': 'watermark.loaded_since',
        'record_since': 'watermark.record_since',
        'as_of_moved_back': 'watermark.as_of_moved_back',
    } %}
    (
        {{ constants.as_of_moved_back }}
        or {{ loaded_at }} > {{ constants.loaded_since }}
        or {{ record_at }} > {{ constants.record_since }}
        {%- if device_id %}
        or {{ device_id }} in (select changed_devices.device_id from changed_devices)
        {%- endif %}
    )
{% endmacro %}
