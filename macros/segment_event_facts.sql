{#- Per user, one column per event rule ("leaf") of the segments: how many events it counts
    (<leaf>__events) and, for aggregate rules, the aggregated property (<leaf>__value). All leaves are
    computed in one scan of fct_events, whatever the number of segments, and each property the rules
    read is taken out of the JSON once per event, not once per rule. A missing or non-numeric property
    counts as 0 in sum and avg (CleverTap) and is skipped by min and max. -#}
{% macro segment_event_facts(leaves) %}
    {%- set as_of_sql = 'as_of.evaluated_at' -%}
    {%- set spec = segment_event_columns(leaves) %}
    with

    as_of as (

        select {{ rekindle_as_of() }} as evaluated_at

    ),

    {{ segment_events(spec) }},

    facts as (

        select
            events.user_id
            {%- for leaf in leaves %}
            {%- set match = segment_event_match(leaf, as_of_sql, spec.columns, spec.numeric) %}
            , sum(case when {{ match }} then 1 else 0 end) as {{ leaf.id }}__events
            {%- if leaf.fn is defined %}
            {%- set number = 'events.' ~ spec.columns[leaf.property] ~ '_number' %}
            {%- if leaf.fn in ('sum', 'avg') %}
            , sum(case when {{ match }} then coalesce({{ number }}, 0) end)
            {%- if leaf.fn == 'avg' %} / nullif(sum(case when {{ match }} then 1 else 0 end), 0){% endif %}
                as {{ leaf.id }}__value
            {%- else %}
            , {{ leaf.fn }}(case when {{ match }} then {{ number }} end) as {{ leaf.id }}__value
            {%- endif %}
            {%- endif %}
            {%- endfor %}
        from events
        cross join as_of
        group by events.user_id

    )

    select * from facts
{% endmacro %}
