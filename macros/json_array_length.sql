{#- Number of elements of the JSON array at a top-level key; null when the key is absent or not an array. -#}
{% macro json_array_length(column, key_sql) %}
    {{ return(adapter.dispatch('json_array_length', 'rekindle')(column, key_sql)) }}
{% endmacro %}

{% macro default__json_array_length(column, key_sql) %}
    case when jsonb_typeof(({{ column }})::jsonb -> {{ key_sql }}) = 'array'
        then jsonb_array_length(({{ column }})::jsonb -> {{ key_sql }}) end
{% endmacro %}

{% macro duckdb__json_array_length(column, key_sql) %}
    case when json_type({{ column }}, '$."' || {{ key_sql }} || '"') = 'ARRAY'
        then json_array_length({{ column }}, '$."' || {{ key_sql }} || '"') end
{% endmacro %}
