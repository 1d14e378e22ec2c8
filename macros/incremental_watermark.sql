{#- An incremental model's watermark as three SQL constants (incremental_constant), for incremental_scope's
    `watermark` CTE and for filters that should skip row groups (incremental_in_scope's watermark_of):
    loaded_since     incremental_loaded_since: the latest loaded_at held, minus the lookback;
    record_since     the latest record time held (records after it were beyond the previous run's as-of
                     instant and become visible now);
    as_of_moved_back true when the model holds records after this run's as-of instant (a rerun or
                     backfill of an earlier day). -#}
{% macro incremental_watermark(record_at_column) %}
    {{ return({
        'loaded_since': incremental_loaded_since('loaded_at'),
        'record_since': incremental_constant(
            "(select coalesce(max(" ~ record_at_column ~ "), cast('1900-01-01' as timestamp)) from " ~ this ~ ")"
        ),
        'as_of_moved_back': incremental_constant(
            "(select coalesce(max(" ~ record_at_column ~ ") > " ~ rekindle_as_of() ~ ", false) from " ~ this ~ ")",
            'boolean',
        ),
    }) }}
{% endmacro %}
