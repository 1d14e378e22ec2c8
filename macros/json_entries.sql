{#- One row per top-level key of a JSON object column: the given columns, `property` (the key) and `value`
    (the value as JSON, so numbers and booleans keep their type). `relation` is a table or CTE name. -#}
{% macro json_entries(relation, json_column, columns) %}
    {{ return(adapter.dispatch('json_entries', 'rekindle')(relation, json_column, columns)) }}
{% endmacro %}

{% macro default__json_entries(relation, json_column, columns) %}
    select
        {% for column in columns %}{{ column }}, {% endfor %}
        entry.key as property,
        entry.value as value
    from {{ relation }}
    cross join lateral jsonb_each(({{ json_column }})::jsonb) as entry
{% endmacro %}

{% macro duckdb__json_entries(relation, json_column, columns) %}
    select
        {% for column in columns %}{{ column }}, {% endfor %}
        property,
        json_extract({{ json_column }}, '$."' || property || '"') as value
    from (
        select *, unnest(json_keys({{ json_column }})) as property from {{ relation }}
    ) as entries
{% endmacro %}
