{#- One row per dim_users user: the as-of instant and, for every segment, whether the user is in it
    (in_<name>). All segments are evaluated in this one pass over dim_users and the event facts; a rule
    `in_segment: other` is the other segment's rules inlined (definitions have no cycles), so no segment
    waits for another. The event facts come from int_segments__event_facts, or, with `leaves` (the
    preview command), are computed inline for the given segments alone. -#}
{% macro segment_flags(definitions, leaves=none) %}
    {%- set by_name = {} -%}
    {%- for definition in definitions %}{% do by_name.update({definition.name: definition}) %}{% endfor -%}
    with

    as_of as (

        select {{ rekindle_as_of() }} as evaluated_at

    ),

    users as (

        select * from {{ ref('dim_users') }}

    ),

    facts as (

        {% if leaves is none -%}
        select * from {{ ref('int_segments__event_facts') }}
        {%- else -%}
        {{ segment_event_facts(leaves) }}
        {%- endif %}

    ),

    final as (

        select
            users.user_id,
            as_of.evaluated_at
            {%- for definition in definitions %}
            , {{ segment_condition(definition.rules, 'as_of.evaluated_at', by_name) }} as in_{{ definition.name }}
            {%- endfor %}
        from users
        cross join as_of
        left join facts on users.user_id = facts.user_id

    )

    select * from final
{% endmacro %}
