{#- A definition value as a SQL literal. Strings are quoted with ' doubled (standard SQL; both DuckDB and
    Postgres with standard_conforming_strings read backslashes literally), so no value can end the
    literal. Numbers and booleans were type-checked by loaders/segments.py and are rendered by Jinja. -#}
{% macro segment_literal(value) %}
    {%- if value is boolean -%}
        {{ 'true' if value else 'false' }}
    {%- elif value is number -%}
        {{ value }}
    {%- elif value is string -%}
        '{{ value | replace("'", "''") }}'
    {%- else -%}
        {{ exceptions.raise_compiler_error('segment_literal: not a text, number or boolean: ' ~ value) }}
    {%- endif -%}
{% endmacro %}
