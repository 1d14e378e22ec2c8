{#- Two-sided p-value of a standard normal statistic z: P(|Z| >= |z|) = erfc(|z| / sqrt(2)), with
    erfc from Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7 for every z), because neither
    DuckDB nor Postgres has erf. Plain arithmetic, so it is the same on every engine. Beyond |z| = 36 the
    p-value (below 1e-280) is returned as 0: Postgres raises an underflow error on exp() of such values. -#}
{% macro normal_two_sided_p_value(z_sql) %}
    {%- set x = '(abs(cast(' ~ z_sql ~ ' as double precision)) / 1.4142135623730951)' -%}
    {%- set t = '(1.0 / (1.0 + 0.3275911 * ' ~ x ~ '))' -%}
    cast(case when {{ x }} > 25.5 then 0.0 else
        {{ t }} * (0.254829592 + {{ t }} * (-0.284496736 + {{ t }} * (1.421413741
            + {{ t }} * (-1.453152027 + {{ t }} * 1.061405429))))
        * exp(-{{ x }} * {{ x }})
    end as double precision)
{% endmacro %}
