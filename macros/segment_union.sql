{#- Every segment's members, one row per segment and member (the segments are listed by the generated
    int_segments__evaluated). With no segment defined, an empty relation of the same shape. -#}
{% macro segment_union(names) %}
    {%- for name in names %}
    select segment_name, user_id, evaluated_at from {{ ref('segment__' ~ name) }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
    {%- if not names %}
    select
        cast(null as {{ dbt.type_string() }}) as segment_name,
        cast(null as {{ dbt.type_string() }}) as user_id,
        cast(null as timestamp) as evaluated_at
    where false
    {%- endif %}
{% endmacro %}
