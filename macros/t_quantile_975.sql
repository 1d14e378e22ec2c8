{#- The 97.5% quantile of Student's t with df degrees of freedom (the multiplier of a two-sided 95%
    interval), by the Cornish-Fisher expansion of Abramowitz & Stegun 26.7.5 around the normal quantile
    1.959963984540054, to the 1/df^4 term. Against the exact quantile its error is below 4e-8 from
    df = 29 on and 8e-6 at df = 10 (it grows fast below that: rpt_campaign_lift requires a minimum group
    size first). Neither DuckDB nor Postgres ships a t distribution. -#}
{% macro t_quantile_975(df_sql) %}
    {%- set df = 'cast(' ~ df_sql ~ ' as double precision)' -%}
    (
        1.959963984540054
        + 2.372271230298562 / {{ df }}
        + 2.8224986157396112 / ({{ df }} * {{ df }})
        + 2.555849679507722 / ({{ df }} * {{ df }} * {{ df }})
        + 1.5895340533938225 / ({{ df }} * {{ df }} * {{ df }} * {{ df }})
    )
{% endmacro %}
