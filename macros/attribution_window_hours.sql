{#- The attribution window in hours of a campaign for one kind of touch ('click' for "converted",
    'influence' for "influenced"): the campaign's own conversion_window_days when its YAML sets one,
    else var rekindle_attribution_window_hours[channel][kind]. The mapping is validated here so that a
    missing channel or kind stops the build with its name rather than crediting nothing. -#}
{% macro attribution_window_hours(campaign, kind) %}
    {%- set windows = var('rekindle_attribution_window_hours') -%}
    {%- if kind not in ('click', 'influence') -%}
        {{ exceptions.raise_compiler_error("attribution_window_hours: kind must be 'click' or 'influence', got " ~ kind) }}
    {%- endif -%}
    {%- for channel in ('email', 'push', 'sms', 'whatsapp') -%}
        {%- set hours = (windows.get(channel) or {}).get(kind) if windows is mapping else none -%}
        {%- if hours is not number or hours is boolean or hours <= 0 -%}
            {{ exceptions.raise_compiler_error(
                "var rekindle_attribution_window_hours must give a positive number of hours for channel '"
                ~ channel ~ "', kind '" ~ kind ~ "', got " ~ hours) }}
        {%- endif -%}
    {%- endfor -%}
    coalesce(
        24 * {{ campaign }}.conversion_window_days,
        case {{ campaign }}.channel
        {%- for channel in ('email', 'push', 'sms', 'whatsapp') %}
            when '{{ channel }}' then {{ windows[channel][kind] }}
        {%- endfor %}
        end
    )
{% endmacro %}
