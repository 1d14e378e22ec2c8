{#- Per user, one column per event rule ("leaf") of the segments: how many events it counts
    (<leaf>__events) and, for aggregate rules, the aggregated property (<leaf>__value). All leaves are
    computed in one scan of fct_events, whatever the number of segments. A missing or non-numeric
    property counts as 0 in sum and avg (CleverTap) and is skipped by min and max. -#}
{% macro segment_event_facts(leaves) %}
    {%- set as_of_sql = 'as_of.evaluated_at' -%}
    {%- set names = [] -%}
    {%- for leaf in leaves -%}
        {%- if leaf.event not in names %}{% do names.append(leaf.event) %}{% endif -%}
    {%- endfor %}
    with

    as_of as (

        select {{ rekindle_as_of() }} as evaluated_at

    ),

    facts as (

        select
            events.user_id
            {%- for leaf in leaves %}
            {%- set match = segment_event_match(leaf, as_of_sql) %}
            , sum(case when {{ match }} then 1 else 0 end) as {{ leaf.id }}__events
            {%- if leaf.fn is defined %}
            {%- set number = segment_safe_number(json_text('events.properties', segment_literal(leaf.property))) %}
            {%- if leaf.fn in ('sum', 'avg') %}
            , sum(case when {{ match }} then coalesce({{ number }}, 0) end)
            {%- if leaf.fn == 'avg' %} / nullif(sum(case when {{ match }} then 1 else 0 end), 0){% endif %}
                as {{ leaf.id }}__value
            {%- else %}
            , {{ leaf.fn }}(case when {{ match }} then {{ number }} end) as {{ leaf.id }}__value
            {%- endif %}
            {%- endif %}
            {%- endfor %}
        from {{ ref('fct_events') }} as events
        cross join as_of
        {%- if names %}
        where events.event_name in ({% for name in names %}{{ segment_literal(name) }}{{ ', ' if not loop.last }}{% endfor %})
        {%- else %}
        where false
        {%- endif %}
        group by events.user_id

    )

    select * from facts
{% endmacro %}
