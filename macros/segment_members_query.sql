{#- A segment's members as of the run's as-of instant: every dim_users row whose rules hold. The event
    facts come from the shared model (int_segments__event_facts), or, when `leaves` is given (the
    preview command, for a definition not built yet), are computed inline for this segment alone. -#}
{% macro segment_members_query(definition, leaves=none) %}
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
            {{ segment_literal(definition.name) }} as segment_name,
            users.user_id,
            as_of.evaluated_at
        from users
        cross join as_of
        left join facts on users.user_id = facts.user_id
        where {{ segment_condition(definition.rules, 'as_of.evaluated_at') }}

    )

    select * from final
{% endmacro %}
