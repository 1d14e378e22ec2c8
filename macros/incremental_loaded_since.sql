{#- The load-time watermark of an incremental model, as a constant (incremental_constant: a scalar subquery
    at parse time and in unit tests): the latest loaded_at it
    holds minus var rekindle_incremental_lookback_hours (default 0); records loaded after it are
    (re)processed. Load time, not event time, is the watermark, so a late event (old event time, new
    load) is always picked up without an event-time window. The lookback is for loads that commit
    while dbt runs (a part of a load seen, the rest committed later under the same or an earlier
    loaded_at); rows inside it are processed again, which changes nothing but costs time. -#}
{% macro incremental_loaded_since(loaded_at_column='loaded_at') %}
    {{- return(incremental_constant(incremental_loaded_since_expression(loaded_at_column))) -}}
{% endmacro %}

{#- The same watermark as a scalar subquery (for incremental_watermark, which reads it with its others). -#}
{% macro incremental_loaded_since_expression(loaded_at_column='loaded_at') %}
    {%- set subquery -%}
    (
        select
            {{ dbt.dateadd(
                'hour',
                -1 * var('rekindle_incremental_lookback_hours'),
                'coalesce(max(' ~ loaded_at_column ~ "), cast('1900-01-01' as timestamp))"
            ) }}
        from {{ this }}
    )
    {%- endset -%}
    {{- return(subquery) -}}
{% endmacro %}
