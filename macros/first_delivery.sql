{#- The rows of a raw loader table with every key's first delivery only (earliest load, then file and
    line). The loader drops re-deliveries within its lookback window; this catches any older one. -#}
{% macro first_delivery(relation, key) %}
    select *
    from (
        select
            *,
            row_number() over (partition by {{ key }} order by loaded_at, source_file, source_line) as delivery
        from {{ relation }}
    ) as numbered
    where delivery = 1
{% endmacro %}
