{#- What a set of event rules reads from fct_events, for segment_events and segment_event_match. A rule is a
    segment's event leaf or a funnel step: `event`, `where` filters and, for an aggregate, `property`.
    Returns `names` (the events any rule counts), `columns` (each property read, to the column that holds
    it: property_1, property_2, ...), `readers` (per property, the events whose rules read it) and
    `numeric` (the properties compared with a number or aggregated, also read as numbers). -#}
{% macro segment_event_columns(rules) %}
    {%- set names = [] -%}
    {%- set columns = {} -%}
    {%- set readers = {} -%}
    {%- set numeric = [] -%}
    {%- for rule in rules -%}
        {%- if rule.event not in names %}{% do names.append(rule.event) %}{% endif -%}
        {%- if rule.property is defined and rule.property not in numeric %}{% do numeric.append(rule.property) %}{% endif -%}
        {%- for filter in rule.where -%}
            {%- set sample = (filter.value[0] if filter.value is sequence and filter.value is not string else filter.value) if filter.value is defined else none -%}
            {%- if sample is number and sample is not boolean and filter.property not in numeric %}{% do numeric.append(filter.property) %}{% endif -%}
        {%- endfor -%}
        {%- for key in (rule.where | map(attribute='property') | list) + ([rule.property] if rule.property is defined else []) -%}
            {%- if key not in columns -%}
                {%- do columns.update({key: 'property_' ~ (columns | length + 1)}) -%}
                {%- do readers.update({key: []}) -%}
            {%- endif -%}
            {%- if rule.event not in readers[key] %}{% do readers[key].append(rule.event) %}{% endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return({'names': names, 'columns': columns, 'readers': readers, 'numeric': numeric}) }}
{% endmacro %}
