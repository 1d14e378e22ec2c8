{#- A text as a double, or null when it is not a plain decimal number. One pattern on both engines, so they
    agree: DuckDB's try_cast alone would also read "nan", "inf" and "1_000", and Postgres' cast would fail
    the whole build on "1e999". The digit limits keep every accepted text inside double's range. -#}
{% macro segment_safe_number(text_sql) %}
    {%- set pattern = '^\\s*[-+]?([0-9]{1,200}([.][0-9]{0,200})?|[.][0-9]{1,200})([eE][-+]?[0-9]{1,2})?\\s*$' -%}
    {{ return(adapter.dispatch('segment_safe_number', 'rekindle')(text_sql, pattern)) }}
{% endmacro %}

{% macro default__segment_safe_number(text_sql, pattern) %}
    (case when {{ text_sql }} ~ '{{ pattern }}' then cast({{ text_sql }} as double precision) end)
{% endmacro %}

{% macro duckdb__segment_safe_number(text_sql, pattern) %}
    (case when regexp_full_match({{ text_sql }}, '{{ pattern }}') then try_cast(trim({{ text_sql }}) as double) end)
{% endmacro %}
