{#- Aggregate key/value rows (values as JSON) into one JSON object per group. -#}
{% macro json_object_agg(key, value) %}
    {{ return(adapter.dispatch('json_object_agg', 'rekindle')(key, value)) }}
{% endmacro %}

{% macro default__json_object_agg(key, value) %}
    jsonb_object_agg({{ key }}, {{ value }})
{% endmacro %}

{% macro duckdb__json_object_agg(key, value) %}
    {#- json_group_object has no ORDER BY; keys in a fixed order keep reruns' JSON text identical -#}
    cast('{' || string_agg(to_json({{ key }})::varchar || ':' || ({{ value }})::varchar, ',' order by {{ key }}) || '}'
        as json)
{% endmacro %}
