{#- Per user, one column per event rule ("leaf") of the segments: how many events it counts
    (<leaf>__events) and, for aggregate rules, the aggregated property (<leaf>__value). All leaves are
    computed in one scan of fct_events, whatever the number of segments, and each property the rules
    read is taken out of the JSON once per event, not once per rule. A missing or non-numeric property
    counts as 0 in sum and avg (CleverTap) and is skipped by min and max.
    Leaves that select the same events (the same event, window and filters: "bought in the last 30 days"
    turns up in many segments, and an avg needs the count its own rule has) share one count, and those
    that also aggregate the same property share one aggregate: each aggregate costs the scan a pass over
    its rows, which made them half of the segments' build (issue 5's bench).
    When the run gives the as-of instant (REKINDLE_AS_OF or var rekindle_as_of, as Airflow does), the
    windows compare event times with constants, which the engine folds once, rather than with a joined
    as-of column. Each aggregate has a FILTER clause (both engines have it). -#}
{% macro segment_event_facts(leaves) %}
    {%- set constant_as_of = rekindle_as_of_given() is not none -%}
    {%- set as_of_sql = rekindle_as_of() if constant_as_of else 'as_of.evaluated_at' -%}
    {%- set spec = segment_event_columns(leaves) -%}
    {#- counts: one per distinct selection (the leaf without its id and aggregate), in first-seen order;
        values: one per distinct (selection, aggregate, property), avg reading sum's -#}
    {%- set counts = {} -%}
    {%- set values = {} -%}
    {%- set columns = {} -%}
    {%- for leaf in leaves -%}
        {%- set selection = {} -%}
        {%- for key, value in leaf.items() if key not in ('id', 'fn', 'property') %}{% do selection.update({key: value}) %}{% endfor -%}
        {%- set selection_key = tojson(selection, sort_keys=true) -%}
        {%- if selection_key not in counts -%}
            {%- do counts.update({selection_key: {'name': 'count_' ~ (counts | length + 1), 'leaf': leaf}}) -%}
        {%- endif -%}
        {%- set count_name = counts[selection_key].name -%}
        {%- do columns.update({leaf.id: {'events': count_name}}) -%}
        {%- if leaf.fn is defined -%}
            {%- set kind = 'sum' if leaf.fn in ('sum', 'avg') else leaf.fn -%}
            {%- set value_key = tojson([selection_key, kind, leaf.property]) -%}
            {%- if value_key not in values -%}
                {%- do values.update({value_key: {'name': 'value_' ~ (values | length + 1), 'leaf': leaf, 'kind': kind}}) -%}
            {%- endif -%}
            {%- do columns[leaf.id].update({'value': values[value_key].name, 'avg': leaf.fn == 'avg'}) -%}
        {%- endif -%}
    {%- endfor %}
    with

    {%- if not constant_as_of %}

    as_of as (

        select {{ rekindle_as_of() }} as evaluated_at

    ),
    {%- endif %}

    {{ segment_events(spec) }},

    aggregated as (

        select
            events.user_id
            {%- for count in counts.values() %}
            , count(*) filter (where {{ segment_event_match(count.leaf, as_of_sql, spec.columns, spec.numeric) }}) as {{ count.name }}
            {%- endfor %}
            {%- for value in values.values() %}
            {%- set number = 'events.' ~ spec.columns[value.leaf.property] ~ '_number' %}
            , {{ value.kind }}({{ 'coalesce(' ~ number ~ ', 0)' if value.kind == 'sum' else number }})
                filter (where {{ segment_event_match(value.leaf, as_of_sql, spec.columns, spec.numeric) }}) as {{ value.name }}
            {%- endfor %}
        from events
        {%- if not constant_as_of %}
        cross join as_of
        {%- endif %}
        group by events.user_id

    ),

    facts as (

        select
            aggregated.user_id
            {%- for leaf in leaves %}
            {%- set column = columns[leaf.id] %}
            , aggregated.{{ column.events }} as {{ leaf.id }}__events
            {%- if column.value is defined %}
            , aggregated.{{ column.value }}{% if column.avg %} / nullif(aggregated.{{ column.events }}, 0){% endif %} as {{ leaf.id }}__value
            {%- endif %}
            {%- endfor %}
        from aggregated

    )

    select * from facts
{% endmacro %}
