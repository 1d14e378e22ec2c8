{#- Two CTEs, `properties` and `events`: the fct_events rows of the events some rule counts, with each
    property the rules read taken out of the JSON once per event (and only for the events whose rules read
    it), and each property compared with a number also read as a number once (<column>_number), not once
    per rule. `spec` is segment_event_columns(rules); segment_event_facts and funnel_entries both read
    events through it, so a `where:` filter means the same in segments and funnels. `source` replaces
    fct_events with a relation or CTE of its rows (an incremental model's share of them). -#}
{% macro segment_events(spec, source=none) %}
    properties as (

        select
            events.user_id,
            events.event_name,
            events.event_at
            {%- for key, column in spec.columns.items() %}
            , case
                when events.event_name in ({% for name in spec.readers[key] %}{{ segment_literal(name) }}{{ ', ' if not loop.last }}{% endfor %})
                    then {{ json_text('events.properties', segment_literal(key)) }}
            end as {{ column }}
            {%- endfor %}
        from {{ source if source is not none else ref('fct_events') }} as events
        {%- if spec.names %}
        where events.event_name in ({% for name in spec.names %}{{ segment_literal(name) }}{{ ', ' if not loop.last }}{% endfor %})
        {%- else %}
        where false
        {%- endif %}

    ),

    events as (

        select
            properties.*
            {%- for key in spec.numeric %}
            , {{ segment_safe_number('properties.' ~ spec.columns[key]) }} as {{ spec.columns[key] }}_number
            {%- endfor %}
        from properties

    )
{%- endmacro %}
