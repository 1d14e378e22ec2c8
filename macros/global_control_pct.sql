{#- The share of users (percent) in the system-wide control group, var rekindle_global_control_pct,
    checked here so that a typo stops the build instead of silently holding out too many or no users.
    CleverTap's system control group is 2-5% of users; Rekindle keeps that range. -#}
{% macro global_control_pct() %}
    {%- set pct = var('rekindle_global_control_pct', 3) -%}
    {%- if pct is not number or pct is boolean or pct < 2 or pct > 5 -%}
        {{ exceptions.raise_compiler_error(
            "var rekindle_global_control_pct must be a number from 2 to 5 (percent of users held out of "
            ~ "every campaign), got " ~ pct) }}
    {%- endif -%}
    {{ return(pct) }}
{% endmacro %}
