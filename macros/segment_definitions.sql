{#- The defined segments as rows (segment_name, description, source_file, definition as JSON text);
    every value is rendered by segment_literal. With none defined, an empty relation of that shape. -#}
{% macro segment_definitions(rows) %}
    {%- for row in rows %}
    select
        {{ segment_literal(row.segment_name) }} as segment_name,
        {{ segment_literal(row.description) }} as description,
        {{ segment_literal(row.source_file) }} as source_file,
        {{ segment_literal(row.definition) }} as definition
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
    {%- if not rows %}
    select
        cast(null as {{ dbt.type_string() }}) as segment_name,
        cast(null as {{ dbt.type_string() }}) as description,
        cast(null as {{ dbt.type_string() }}) as source_file,
        cast(null as {{ dbt.type_string() }}) as definition
    where false
    {%- endif %}
{% endmacro %}
