{#- A segment's rule tree as one boolean over `users` (dim_users), `facts` (its event facts) and
    `as_of`. Every leaf is non-null, so `not` and `any` behave as a marketer reads them.
    did: at least one counted event, and the count test when given; did_not: none. aggregate: at least
    one counted event and the aggregated value passes. in_segment: the other segment's rules, inlined
    from `definitions` (by name), or an RFM segment or lifecycle stage (dim_users' columns). -#}
{% macro segment_condition(rule, as_of_sql, definitions) %}
    {%- set sql_ops = {'eq': '=', 'neq': '<>', 'gt': '>', 'gte': '>=', 'lt': '<', 'lte': '<='} -%}
    {%- if rule['all'] is defined or rule['any'] is defined -%}
        {%- set joiner = ' and ' if rule['all'] is defined else ' or ' -%}
        {%- set parts = [] -%}
        {%- for child in (rule['all'] if rule['all'] is defined else rule['any']) -%}
            {%- do parts.append(segment_condition(child, as_of_sql, definitions)) -%}
        {%- endfor -%}
        ({{ parts | join(joiner) }})
    {%- elif rule['not'] is defined -%}
        (not {{ segment_condition(rule['not'], as_of_sql, definitions) }})
    {%- elif rule.did is defined -%}
        {%- set events = 'coalesce(facts.' ~ rule.did ~ '__events, 0)' -%}
        ({{ events }} >= 1
        {%- if rule.count is defined %} and {{ events }} {{ sql_ops[rule.count.op] }} {{ rule.count.value }}{% endif %})
    {%- elif rule.did_not is defined -%}
        (coalesce(facts.{{ rule.did_not }}__events, 0) = 0)
    {%- elif rule.aggregate is defined -%}
        (coalesce(facts.{{ rule.aggregate }}__events, 0) >= 1
        and coalesce(facts.{{ rule.aggregate }}__value {{ sql_ops[rule.op] }} {{ segment_literal(rule.value) }}, false))
    {%- elif rule.profile is defined -%}
        {%- set condition = rule.profile -%}
        {%- if condition.column is defined -%}
            {{ segment_compare('users.' ~ condition.column, condition.type, condition, as_of_sql) }}
        {%- else -%}
            {{ segment_compare(json_text('users.custom_properties', segment_literal(condition.custom)), 'json', condition, as_of_sql) }}
        {%- endif -%}
    {%- elif rule.in_segment is defined -%}
        {%- set target = rule.in_segment -%}
        {%- if target.segment is defined -%}
            {{ segment_condition(definitions[target.segment].rules, as_of_sql, definitions) }}
        {%- elif target.rfm is defined -%}
            coalesce(users.rfm_segment = {{ segment_literal(target.rfm) }}, false)
        {%- else -%}
            coalesce(users.lifecycle_stage = {{ segment_literal(target.lifecycle) }}, false)
        {%- endif -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error('segment_condition: unknown rule ' ~ rule) }}
    {%- endif -%}
{% endmacro %}
