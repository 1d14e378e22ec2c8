{#- A query over int_identity__record_users of the records an incremental run must (re)process, inside
    `{% if is_incremental() %}` after incremental_scope: the records whose user may differ from what the
    model holds. columns: the select list (alias record_users); record_kind: 'event' or 'profile' to keep
    one kind; record_at_column: the model's record-time column, as given to incremental_scope.

    Records loaded or made visible since the model's watermark, and every record of a device with a switch
    loaded since (re-resolved: its user may have changed), have a resolved_loaded_at or record_at past the
    watermark, and record_users appended them when it rewrote them, so that test is a filter on constants
    (incremental_watermark) that DuckDB answers from the last row groups. A test for the re-resolved devices
    themselves (device_id in changed_devices) reads the device of every record instead: at 10M events about
    half a second per model, for a few thousand devices. Two cases load time does not see get branches of
    their own, empty on a run whose as-of instant moves forward with the loads: devices whose switch only
    became visible now (revealed_devices), and a rerun of an earlier day (everything). -#}
{% macro incremental_resolved_records(columns, record_at_column, record_kind=none) %}
    {%- set constants = incremental_watermark(record_at_column) %}
    {%- set recent -%}
        (record_users.resolved_loaded_at > {{ constants.loaded_since }} or record_users.record_at > {{ constants.record_since }})
    {%- endset %}
    {%- set of_kind = "record_users.record_kind = '" ~ record_kind ~ "' and " if record_kind else "" %}
    select {{ columns }}
    from {{ ref('int_identity__record_users') }} as record_users
    where {{ of_kind }}{{ recent }}
    union all
    select {{ columns }}
    from {{ ref('int_identity__record_users') }} as record_users
    where
        {{ of_kind }}record_users.device_id in (select revealed_devices.device_id from revealed_devices)
        and not {{ constants.as_of_moved_back }}
        and not coalesce({{ recent }}, false)
    union all
    select {{ columns }}
    from {{ ref('int_identity__record_users') }} as record_users
    where {{ of_kind }}{{ constants.as_of_moved_back }} and not coalesce({{ recent }}, false)
{% endmacro %}
