{#- Per user, one column per event rule ("leaf") of the segments: how many events it counts
    (<leaf>__events) and, for aggregate rules, the aggregated property (<leaf>__value). All leaves are
    computed in one scan of fct_events, whatever the number of segments, and each property the rules
    read is taken out of the JSON once per event, not once per rule. A missing or non-numeric property
    counts as 0 in sum and avg (CleverTap) and is skipped by min and max.
    When the run gives the as-of instant (REKINDLE_AS_OF or var rekindle_as_of, as Airflow does), the
    windows compare event times with constants, which the engine folds once, rather than with a joined
    as-of column. Each leaf is an aggregate with a FILTER clause (both engines have it). -#}
{% macro segment_event_facts(leaves) %}
    {%- set constant_as_of = rekindle_as_of_given() is not none -%}
    {%- set as_of_sql = rekindle_as_of() if constant_as_of else 'as_of.evaluated_at' -%}
    {%- set spec = segment_event_columns(leaves) %}
    with

    {%- if not constant_as_of %}

    as_of as (

        select {{ rekindle_as_of() }} as evaluated_at

    ),
    {%- endif %}

    {{ segment_events(spec) }},

    facts as (

        select
            events.user_id
            {%- for leaf in leaves %}
            {%- set match = segment_event_match(leaf, as_of_sql, spec.columns, spec.numeric) %}
            , count(*) filter (where {{ match }}) as {{ leaf.id }}__events
            {%- if leaf.fn is defined %}
            {%- set number = 'events.' ~ spec.columns[leaf.property] ~ '_number' %}
            {%- if leaf.fn in ('sum', 'avg') %}
            , sum(coalesce({{ number }}, 0)) filter (where {{ match }})
            {%- if leaf.fn == 'avg' %} / nullif(count(*) filter (where {{ match }}), 0){% endif %}
                as {{ leaf.id }}__value
            {%- else %}
            , {{ leaf.fn }}({{ number }}) filter (where {{ match }}) as {{ leaf.id }}__value
            {%- endif %}
            {%- endif %}
            {%- endfor %}
        from events
        {%- if not constant_as_of %}
        cross join as_of
        {%- endif %}
        group by events.user_id

    )

    select * from facts
{% endmacro %}
