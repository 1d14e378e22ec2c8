{#- The instant the models treat as "now". Airflow hands the run's data_interval_end over in the
    environment variable REKINDLE_AS_OF (var rekindle_as_of, when given, wins: unit tests and ad-hoc runs)
    so a backfilled day sees exactly that day's world; without either, the time of the latest loaded event.
    Why an environment variable: dbt re-parses the whole project whenever --vars change, which a daily
    as-of would force on every run; an env_var read only at execution (`execute`) is invisible to the
    parser, so partial parsing keeps working. The value is parsed here, so nothing but a timestamp
    reaches the SQL. -#}
{% macro rekindle_as_of() %}
    {%- set as_of = rekindle_as_of_given() -%}
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

{#- The as-of instant the run was given (var or REKINDLE_AS_OF), as text, or none when "now" is the latest
    event: models that can use a constant instead of a subquery ask this. -#}
{% macro rekindle_as_of_given() %}
    {{ return(var('rekindle_as_of', none) or (env_var('REKINDLE_AS_OF', '') if execute else none) or none) }}
{% endmacro %}
