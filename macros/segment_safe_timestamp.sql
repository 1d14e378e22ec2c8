{#- A text as a timestamp, or null when it is not an ISO date or date-time (YYYY-MM-DD[ HH:MM[:SS]]). -#}
{% macro segment_safe_timestamp(text_sql) %}
    {{ return(adapter.dispatch('segment_safe_timestamp', 'rekindle')(text_sql)) }}
{% endmacro %}

{% macro default__segment_safe_timestamp(text_sql) %}
    (case
        when {{ text_sql }} ~ '^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}([.]\d+)?)?)?$'
            then cast({{ text_sql }} as timestamp)
    end)
{% endmacro %}

{% macro duckdb__segment_safe_timestamp(text_sql) %}
    try_cast({{ text_sql }} as timestamp)
{% endmacro %}
