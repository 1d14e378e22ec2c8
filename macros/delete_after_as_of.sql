{#- Post-hook of the incremental models: remove rows after the as-of instant. They exist only when a
    run evaluates an earlier day than the run before it (a rerun or backfill); the incremental filter
    then recomputes every row up to the as-of instant (incremental_scope's as_of_moved_back), and
    this removes the rest, so the table equals a full refresh for that day. -#}
{% macro delete_after_as_of(record_at_column) %}
    delete from {{ this }} where {{ record_at_column }} > {{ rekindle_as_of() }}
{% endmacro %}
