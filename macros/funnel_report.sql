{#- rpt_funnels from the validated funnel definitions (loaders/funnels.py). Per funnel, an entry is a step-1
    event (in the funnel's entry window); from it, step k is the user's earliest step-k event strictly after
    the entry's step k-1, as long as it is within window_seconds of step 1. Taking the earliest event at
    every step is never worse than a later one (the window is anchored at step 1), so a user reaches step k
    exactly when some ordered sequence of their events does. Each step is one window function over the
    entries still going and that step's events, not a join of events to events. Steps match events with
    segment_event_match, so `where:` filters mean what they mean in segments. -#}
{% macro funnel_report(funnels) %}
    {%- set as_of_sql = 'as_of.evaluated_at' -%}
    {%- set steps = [] -%}
    {%- for funnel in funnels %}{% do steps.extend(funnel.steps) %}{% endfor -%}
    {%- set spec = segment_event_columns(steps) %}
    with

    as_of as (

        select {{ rekindle_as_of() }} as evaluated_at

    ),

    {#- the events some step reads, each filtered property taken out of the JSON once -#}
    {{ segment_events(spec) }},

    {%- for funnel in funnels %}
    {%- set f = loop.index %}
    {%- for step in funnel.steps %}
    {%- set k = loop.index %}
    {#- the entry window (within_days, since, between) applies to step 1 only -#}
    {%- set leaf = dict(step) %}
    {%- if k == 1 %}
        {%- for key in ('within_days', 'since', 'between') %}
            {%- if funnel[key] is defined %}{% do leaf.update({key: funnel[key]}) %}{% endif %}
        {%- endfor %}
    {%- endif %}

    funnel_{{ f }}_step_{{ k }}_events as (

        select
            events.user_id,
            events.event_at
        from events
        cross join as_of
        where {{ segment_event_match(leaf, as_of_sql, spec.columns, spec.numeric) }}

    ),

    {%- if k == 1 %}

    funnel_{{ f }}_reached_1 as (

        select
            user_id,
            event_at as step_1_at
        from funnel_{{ f }}_step_1_events

    ),
    {%- else %}

    funnel_{{ f }}_next_{{ k }} as (

        select
            candidates.*,
            -- the earliest step-{{ k }} event after this entry's step {{ k - 1 }}: at equal times events sort
            -- before entries, so "following rows" holds only later events
            min(case when candidates.is_entry = 0 then candidates.anchor_at end) over (
                partition by candidates.user_id
                order by candidates.anchor_at, candidates.is_entry
                rows between 1 following and unbounded following
            ) as next_at
        from (
            select
                user_id,
                {%- for j in range(1, k) %}
                step_{{ j }}_at,
                {%- endfor %}
                step_{{ k - 1 }}_at as anchor_at,
                1 as is_entry
            from funnel_{{ f }}_reached_{{ k - 1 }}
            union all
            select
                user_id,
                {%- for j in range(1, k) %}
                cast(null as {{ dbt.type_timestamp() }}) as step_{{ j }}_at,
                {%- endfor %}
                event_at as anchor_at,
                0 as is_entry
            from funnel_{{ f }}_step_{{ k }}_events
        ) as candidates

    ),

    funnel_{{ f }}_reached_{{ k }} as (

        select
            user_id,
            {%- for j in range(1, k) %}
            step_{{ j }}_at,
            {%- endfor %}
            next_at as step_{{ k }}_at
        from funnel_{{ f }}_next_{{ k }}
        where
            is_entry = 1
            and next_at <= {{ dbt.dateadd('second', funnel.window_seconds, 'step_1_at') }}

    ),
    {%- endif %}

    {#- per user, the earliest entry that reached this step: its times give the time to convert -#}
    funnel_{{ f }}_first_{{ k }} as (

        select
            user_id,
            step_1_at,
            step_{{ [k - 1, 1] | max }}_at as previous_at,
            step_{{ k }}_at as step_at
        from (
            select
                *,
                row_number() over (partition by user_id order by step_1_at, step_{{ k }}_at) as entry_rank
            from funnel_{{ f }}_reached_{{ k }}
        ) as ranked
        where entry_rank = 1

    ),

    funnel_{{ f }}_step_{{ k }} as (

        select
            {{ segment_literal(funnel.name) }} as funnel_name,
            {{ k }} as step_number,
            {{ segment_literal(step.event) }} as step_event,
            {{ segment_literal(step.description) }} as step_description,
            count(*) as users_reached,
            {%- if k == 1 %}
            cast(null as double precision) as median_seconds_from_first,
            cast(null as double precision) as median_seconds_from_previous,
            {%- else %}
            percentile_cont(0.5) within group (
                order by {{ dbt.datediff('step_1_at', 'step_at', 'second') }}
            ) as median_seconds_from_first,
            percentile_cont(0.5) within group (
                order by {{ dbt.datediff('previous_at', 'step_at', 'second') }}
            ) as median_seconds_from_previous,
            {%- endif %}
            {{ funnel.window_seconds }} as window_seconds
        from funnel_{{ f }}_first_{{ k }}

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
