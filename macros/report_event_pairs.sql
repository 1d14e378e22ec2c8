{#- The [first_event, return_event] pairs of var rekindle_retention_event_pairs as rows (first_event,
    return_event); a malformed entry stops the build with an error naming it. -#}
{% macro report_event_pairs() %}
    {%- set pairs = var('rekindle_retention_event_pairs') -%}
    {%- if pairs is string or pairs | length == 0 -%}
        {{ exceptions.raise_compiler_error('var rekindle_retention_event_pairs must be a non-empty list of [first_event, return_event], got ' ~ pairs) }}
    {%- endif -%}
    {%- for pair in pairs %}
        {%- if pair is string or pair | length != 2 or not (pair[0] is string and pair[1] is string) %}
            {{ exceptions.raise_compiler_error(
                'var rekindle_retention_event_pairs: entry ' ~ loop.index ~ ' must be [first_event, return_event]'
                ~ ' (event names, or "any" for any activity), got ' ~ pair) }}
        {%- endif %}
    select
        {{ segment_literal(pair[0]) }} as first_event,
        {{ segment_literal(pair[1]) }} as return_event
    {{ 'union all' if not loop.last }}
    {%- endfor %}
{% endmacro %}
