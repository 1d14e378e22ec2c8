{#- A phone number in E.164 (+<country><number>), or null when it cannot be one. Numbers written with a
    leading + keep their country code; 10-digit national numbers get var rekindle_default_country_code
    (1: North America); 11 digits starting with that code are read as already international.
    Same regexp_replace signature on DuckDB and Postgres. -#}
{% macro e164_phone(column) %}
    {%- set digits = "regexp_replace(" ~ column ~ ", '[^0-9]', '', 'g')" -%}
    {%- set country = var('rekindle_default_country_code') | string -%}
    case
        when trim({{ column }}) like '+%' and length({{ digits }}) between 8 and 15 then '+' || {{ digits }}
        when length({{ digits }}) = 10 then '+{{ country }}' || {{ digits }}
        when length({{ digits }}) = {{ 10 + country | length }} and {{ digits }} like '{{ country }}%'
            then '+' || {{ digits }}
    end
{% endmacro %}
