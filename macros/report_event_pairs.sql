{#- The [first_event, return_event] pairs of var rekindle_retention_event_pairs as a list of two-item lists,
    each pair once, in the var's order; a malformed entry stops the build with an error naming it. -#}
{% macro report_event_pairs() %}
    {%- set pairs = var('rekindle_retention_event_pairs') -%}
    {%- if pairs is string or pairs | length == 0 -%}
        {{ exceptions.raise_compiler_error('var rekindle_retention_event_pairs must be a non-empty list of [first_event, return_event], got ' ~ pairs) }}
    {%- endif -%}
    {%- set unique_pairs = [] -%}
    {%- for pair in pairs %}
        {%- if pair is string or pair | length != 2 or not (pair[0] is string and pair[1] is string) %}
            {{ exceptions.raise_compiler_error(
                'var rekindle_retention_event_pairs: entry ' ~ loop.index ~ ' must be [first_event, return_event]'
                ~ ' (event names, or "any" for any activity), got ' ~ pair) }}
        {%- endif %}
        {%- if [pair[0], pair[1]] not in unique_pairs %}
            {%- do unique_pairs.append([pair[0], pair[1]]) %}
        {%- endif %}
    {%- endfor %}
    {{ return(unique_pairs) }}
{% endmacro %}
