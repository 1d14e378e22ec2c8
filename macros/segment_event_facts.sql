{#- Per user, one column per event rule ("leaf") of the segments: how many events it counts
    (<leaf>__events) and, for aggregate rules, the aggregated property (<leaf>__value). All leaves are
    computed in one scan of fct_events, whatever the number of segments, and each property the rules
    read is taken out of the JSON once per event, not once per rule. A missing or non-numeric property
    counts as 0 in sum and avg (CleverTap) and is skipped by min and max. -#}
{% macro segment_event_facts(leaves) %}
    {%- set as_of_sql = 'as_of.evaluated_at' -%}
    {%- set names = [] -%}
    {%- set columns = {} -%}
    {%- set readers = {} -%}
    {%- set numeric = [] -%}
    {%- for leaf in leaves -%}
        {%- if leaf.property is defined and leaf.property not in numeric %}{% do numeric.append(leaf.property) %}{% endif -%}
        {%- for filter in leaf.where -%}
            {%- set sample = (filter.value[0] if filter.value is sequence and filter.value is not string else filter.value) if filter.value is defined else none -%}
            {%- if sample is number and sample is not boolean and filter.property not in numeric %}{% do numeric.append(filter.property) %}{% endif -%}
        {%- endfor -%}
        {%- if leaf.event not in names %}{% do names.append(leaf.event) %}{% endif -%}
        {%- for key in (leaf.where | map(attribute='property') | list) + ([leaf.property] if leaf.property is defined else []) -%}
            {%- if key not in columns -%}
                {%- do columns.update({key: 'property_' ~ (columns | length + 1)}) -%}
                {%- do readers.update({key: []}) -%}
            {%- endif -%}
            {%- if leaf.event not in readers[key] %}{% do readers[key].append(leaf.event) %}{% endif -%}
        {%- endfor -%}
    {%- endfor %}
    with

    as_of as (

        select {{ rekindle_as_of() }} as evaluated_at

    ),

    properties as (

        select
            events.user_id,
            events.event_name,
            events.event_at
            {%- for key, column in columns.items() %}
            {#- parsed once per event, and only for the events whose rules read it -#}
            , case
                when events.event_name in ({% for name in readers[key] %}{{ segment_literal(name) }}{{ ', ' if not loop.last }}{% endfor %})
                    then {{ json_text('events.properties', segment_literal(key)) }}
            end as {{ column }}
            {%- endfor %}
        from {{ ref('fct_events') }} as events
        {%- if names %}
        where events.event_name in ({% for name in names %}{{ segment_literal(name) }}{{ ', ' if not loop.last }}{% endfor %})
        {%- else %}
        where false
        {%- endif %}

    ),

    {#- each property a rule compares with a number is read as a number once, not once per rule -#}
    events as (

        select
            properties.*
            {%- for key in numeric %}
            , {{ segment_safe_number('properties.' ~ columns[key]) }} as {{ columns[key] }}_number
            {%- endfor %}
        from properties

    ),

    facts as (

        select
            events.user_id
            {%- for leaf in leaves %}
            {%- set match = segment_event_match(leaf, as_of_sql, columns, numeric) %}
            , sum(case when {{ match }} then 1 else 0 end) as {{ leaf.id }}__events
            {%- if leaf.fn is defined %}
            {%- set number = 'events.' ~ columns[leaf.property] ~ '_number' %}
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
