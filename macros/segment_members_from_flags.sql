{#- One segment's members, read from int_segments__flags (where every segment is evaluated at once). -#}
{% macro segment_members_from_flags(name) %}
    select
        {{ segment_literal(name) }} as segment_name,
        flags.user_id,
        flags.evaluated_at
    from {{ ref('int_segments__flags') }} as flags
    where flags.in_{{ name }}
{% endmacro %}
