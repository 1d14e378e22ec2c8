{#- One row saying what an incremental model has already seen, for the identity-aware incremental
    filter (incremental_in_scope):
    loaded_since      see incremental_loaded_since.
    record_since      the latest record time in the model: records after it were beyond the previous
                      run's as-of instant and become visible now, whenever they were loaded.
    as_of_moved_back  the model holds records after this run's as-of instant (a rerun or backfill of
                      an earlier day): identity then has to be decided again for everything, because
                      a login after the new as-of instant may have adopted older anonymous history.
    Only meaningful inside `{% if is_incremental() %}`. -#}
{% macro incremental_watermark(loaded_at_column, record_at_column) %}
    select
        {{ incremental_loaded_since(loaded_at_column) }} as loaded_since,
        coalesce(max({{ record_at_column }}), cast('1900-01-01' as timestamp)) as record_since,
        coalesce(max({{ record_at_column }}) > {{ rekindle_as_of() }}, false) as as_of_moved_back
    from {{ this }}
{% endmacro %}
