{#- The text value of one top-level key of a JSON column (null when absent).
    `key_sql` is a SQL expression, so the key may come from data (a campaign's goal filter);
    pass a quoted literal for a fixed key: json_text('properties', "'Amount'"). -#}
{% macro json_text(column, key_sql) %}
    {{ return(adapter.dispatch('json_text', 'rekindle')(column, key_sql)) }}
{% endmacro %}

{% macro default__json_text(column, key_sql) %}
    ({{ column }}::jsonb ->> {{ key_sql }})
{% endmacro %}

{% macro duckdb__json_text(column, key_sql) %}
    json_extract_string({{ column }}, '$."' || {{ key_sql }} || '"')
{% endmacro %}
