{#- An incremental model's watermark as three SQL constants (incremental_constant), for incremental_scope's
    `watermark` CTE and for filters that should skip row groups (incremental_in_scope's watermark_of):
    loaded_since     incremental_loaded_since: the latest loaded_at held, minus the lookback;
    record_since     the latest record time held (records after it were beyond the previous run's as-of
                     instant and become visible now);
    as_of_moved_back true when the model holds records after this run's as-of instant (a rerun or
                     backfill of an earlier day).
    One query reads all three, once per model and record-time column: a model asks for its watermark in
    several macros (scope, filters, touched users), and the answers are kept on the node being run. -#}
{% macro incremental_watermark(record_at_column) %}
    {%- set cache = model.setdefault('rekindle_watermarks', {}) if execute else {} %}
    {%- if record_at_column not in cache %}
        {%- do cache.update({record_at_column: incremental_constants({
            'loaded_since': [incremental_loaded_since_expression('loaded_at'), 'timestamp'],
            'record_since': [
                "(select coalesce(max(" ~ record_at_column ~ "), cast('1900-01-01' as timestamp)) from " ~ this ~ ")",
                'timestamp',
            ],
            'as_of_moved_back': [
                "(select coalesce(max(" ~ record_at_column ~ ") > " ~ rekindle_as_of() ~ ", false) from " ~ this ~ ")",
                'boolean',
            ],
        })}) %}
    {%- endif %}
    {{ return(cache[record_at_column]) }}
{% endmacro %}
