{#- The instant the models treat as "now". Airflow passes the run's data_interval_end as
    var rekindle_as_of so a backfilled day sees exactly that day's world; without it, the time of
    the latest loaded event. The value is parsed here, so nothing but a timestamp reaches the SQL. -#}
{% macro rekindle_as_of() %}
    {%- set as_of = var('rekindle_as_of', none) -%}
    {%- if as_of -%}
        {%- set parsed = modules.datetime.datetime.fromisoformat(as_of | string) -%}
        {%- if parsed.tzinfo -%}
            {%- set parsed = parsed.astimezone(modules.pytz.utc).replace(tzinfo=none) -%}
        {%- endif -%}
        cast('{{ parsed.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp)
    {%- else -%}
        (select max(event_at) from {{ ref('stg_clevertap__events') }})
    {%- endif -%}
{% endmacro %}
