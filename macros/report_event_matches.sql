{#- True for a row (with an `event_name` column) of the named event, or of any event that makes a user
    active when `event` is 'any': every event except those in var rekindle_engagement_excluded_events. -#}
{% macro report_event_matches(event, column='event_name') %}
    {%- if event == 'any' -%}
        {{ column }} not in (
            {%- for name in var('rekindle_engagement_excluded_events') -%}
                {{ segment_literal(name) }}{{ ', ' if not loop.last }}
            {%- endfor -%}
        )
    {%- else -%}
        {{ column }} = {{ segment_literal(event) }}
    {%- endif -%}
{% endmacro %}
