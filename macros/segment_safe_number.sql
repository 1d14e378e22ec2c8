{#- A text as a double, or null when it is not a number (a property sent as "n/a" must not fail the
    whole segment build). DuckDB has try_cast; Postgres gets a pattern test first. -#}
{% macro segment_safe_number(text_sql) %}
    {{ return(adapter.dispatch('segment_safe_number', 'rekindle')(text_sql)) }}
{% endmacro %}

{% macro default__segment_safe_number(text_sql) %}
    (case
        when {{ text_sql }} ~ '^\s*[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?\s*$'
            then cast({{ text_sql }} as double precision)
    end)
{% endmacro %}

{% macro duckdb__segment_safe_number(text_sql) %}
    try_cast({{ text_sql }} as double)
{% endmacro %}
