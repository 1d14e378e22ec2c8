{#- True when an event's properties satisfy a campaign's optional goal filter (property, op, value),
    which comes from data, so the key is an expression and the comparison is chosen per row.
    Numeric operators compare as 64-bit floats (dbt.type_float() is 32-bit on DuckDB), eq/neq as text. -#}
{% macro matches_goal_filter(properties, campaign) %}
    (
        {{ campaign }}.goal_filter_property is null
        or case {{ campaign }}.goal_filter_op
            {%- set value = json_text(properties, campaign ~ '.goal_filter_property') %}
            {%- set number = 'cast(' ~ value ~ ' as double precision)' %}
            {%- set target = 'cast(' ~ campaign ~ '.goal_filter_value as double precision)' %}
            when 'eq' then {{ value }} = {{ campaign }}.goal_filter_value
            when 'neq' then {{ value }} <> {{ campaign }}.goal_filter_value
            when 'gt' then {{ number }} > {{ target }}
            when 'gte' then {{ number }} >= {{ target }}
            when 'lt' then {{ number }} < {{ target }}
            when 'lte' then {{ number }} <= {{ target }}
            else false
        end
    )
{% endmacro %}
