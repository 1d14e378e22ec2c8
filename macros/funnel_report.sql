{#- rpt_funnels from the validated funnel definitions (loaders/funnels.py), as an aggregate over
    int_reports__funnel_entries (macros/funnel_entries.sql: every entry's step times). Per funnel, the entries
    inside its entry window (within_days, since, between, relative to this run's as-of instant) count; a user
    reaches step k when one of them does, and the user's times are those of their earliest entry that
    reached step k. That entry holds the minimum of every step time among the entries that reached k: a
    later entry's step k is the earliest step-k event after a later-or-equal step k-1, so step times never
    decrease from entry to entry. So a per-user min() of each column gives the earliest entry's times in one
    pass, without ranking entries. -#}
{% macro funnel_report(funnels) %}
    {%- set as_of_sql = 'as_of.evaluated_at' -%}
    with

    as_of as (

        select {{ rekindle_as_of() }} as evaluated_at

    ),

    {%- for funnel in funnels %}
    {%- set f = loop.index %}
    {#- the entry window as a step-1 event rule, so it means what it means in segments -#}
    {%- set entry_rule = {'event': funnel.steps[0].event, 'where': []} %}
    {%- for key in ('within_days', 'since', 'between') %}
        {%- if funnel[key] is defined %}{% do entry_rule.update({key: funnel[key]}) %}{% endif %}
    {%- endfor %}

    funnel_{{ f }}_users as (

        select
            events.user_id
            {%- for step in funnel.steps %}
            {%- set k = loop.index %}
            , min(case when events.step_{{ k }}_at is not null then events.step_1_at end) as step_{{ k }}_first_at
            , min(case when events.step_{{ k }}_at is not null then events.step_{{ [k - 1, 1] | max }}_at end)
                as step_{{ k }}_previous_at
            , min(events.step_{{ k }}_at) as step_{{ k }}_at
            {%- endfor %}
        from (
            select
                entries.*,
                {{ segment_literal(funnel.steps[0].event) }} as event_name,
                entries.step_1_at as event_at
            from {{ ref('int_reports__funnel_entries') }} as entries
            where entries.funnel_name = {{ segment_literal(funnel.name) }}
        ) as events
        cross join as_of
        where {{ segment_event_match(entry_rule, as_of_sql, {}) }}
        group by events.user_id

    ),
    {%- for step in funnel.steps %}
    {%- set k = loop.index %}

    funnel_{{ f }}_step_{{ k }} as (

        select
            {{ segment_literal(funnel.name) }} as funnel_name,
            {{ k }} as step_number,
            {{ segment_literal(step.event) }} as step_event,
            {{ segment_literal(step.description) }} as step_description,
            count(step_{{ k }}_at) as users_reached,
            {%- if k == 1 %}
            cast(null as double precision) as median_seconds_from_first,
            cast(null as double precision) as median_seconds_from_previous,
            {%- else %}
            percentile_cont(0.5) within group (
                order by {{ dbt.datediff('step_' ~ k ~ '_first_at', 'step_' ~ k ~ '_at', 'second') }}
            ) as median_seconds_from_first,
            percentile_cont(0.5) within group (
                order by {{ dbt.datediff('step_' ~ k ~ '_previous_at', 'step_' ~ k ~ '_at', 'second') }}
            ) as median_seconds_from_previous,
            {%- endif %}
            {{ funnel.window_seconds }} as window_seconds
        from funnel_{{ f }}_users

    ),
    {%- endfor %}
    {%- endfor %}

    steps as (

        {%- for funnel in funnels %}
        {%- set f = loop.index %}
        {%- set last_funnel = loop.last %}
        {%- for step in funnel.steps %}
        select * from funnel_{{ f }}_step_{{ loop.index }}
        {{ 'union all' if not (last_funnel and loop.last) }}
        {%- endfor %}
        {%- endfor %}
        {%- if not funnels %}
        select
            cast(null as {{ dbt.type_string() }}) as funnel_name,
            0 as step_number,
            cast(null as {{ dbt.type_string() }}) as step_event,
            cast(null as {{ dbt.type_string() }}) as step_description,
            0 as users_reached,
            cast(null as double precision) as median_seconds_from_first,
            cast(null as double precision) as median_seconds_from_previous,
            0 as window_seconds
        where false
        {%- endif %}

    ),

    final as (

        select
            steps.funnel_name,
            cast(steps.step_number as {{ dbt.type_int() }}) as step_number,
            steps.step_event,
            steps.step_description,
            cast(steps.users_reached as {{ dbt.type_bigint() }}) as users_reached,
            {{ report_ratio(
                'steps.users_reached',
                'lag(steps.users_reached) over (partition by steps.funnel_name order by steps.step_number)'
            ) }} as conversion_from_previous,
            {{ report_ratio(
                'steps.users_reached',
                'first_value(steps.users_reached) over (partition by steps.funnel_name order by steps.step_number)'
            ) }} as conversion_from_first,
            cast(steps.median_seconds_from_first as double precision) as median_seconds_from_first,
            cast(steps.median_seconds_from_previous as double precision) as median_seconds_from_previous,
            cast(steps.window_seconds as {{ dbt.type_bigint() }}) as window_seconds,
            as_of.evaluated_at
        from steps
        cross join as_of

    )

    select * from final
{% endmacro %}
