{#- A text as a timestamp, or null when it is not a real ISO date or date-time (YYYY-MM-DD[ HH:MM[:SS[.f]]],
    naive, i.e. UTC). Postgres has no try_cast, and a cast of "2026-02-30" would fail the whole build:
    the month, day and time fields are checked first (CASE evaluates its conditions in order). -#}
{% macro segment_safe_timestamp(text_sql) %}
    {%- set pattern = '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,6})?)?)?$' -%}
    {{ return(adapter.dispatch('segment_safe_timestamp', 'rekindle')(text_sql, pattern)) }}
{% endmacro %}

{% macro default__segment_safe_timestamp(text_sql, pattern) %}
    (case
        when
            {{ text_sql }} ~ '{{ pattern }}'
            and cast(substr({{ text_sql }}, 9, 2) as integer) <= extract(
                day from cast(substr({{ text_sql }}, 1, 7) || '-01' as date) + interval '1 month' - interval '1 day'
            )
            then cast(replace({{ text_sql }}, 'T', ' ') as timestamp)
    end)
{% endmacro %}

{% macro duckdb__segment_safe_timestamp(text_sql, pattern) %}
    (case when regexp_full_match({{ text_sql }}, '{{ pattern }}') then try_cast({{ text_sql }} as timestamp) end)
{% endmacro %}
