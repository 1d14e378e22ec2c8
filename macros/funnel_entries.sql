{#- int_reports__funnel_entries from the validated funnel definitions (loaders/funnels.py): one row per user
    and funnel entry (a step-1 event) with the time of every step the entry reached, plus one row with a
    null funnel for a user who has events but no entry. Per funnel, step k of an entry is the user's
    earliest step-k event strictly after the entry's step k-1, as long as it is within window_seconds of
    step 1. An entry's steps depend on that user's events only, which is what lets the model be incremental
    by user; the entry window (within_days, since, between), which moves with the as-of instant, is applied
    by funnel_report. Each step is one window function over the entries still going and that step's events,
    not a join of events to events. Steps match events with segment_event_match, so `where:` filters mean
    what they mean in segments.

    Incremental: a run replaces the rows of every user it touches (delete+insert on user_id), with
    fct_sessions' scope: owners of new or newly visible records and everyone who owns or owned records on a
    re-resolved device. Of a user with new records only, it recomputes the entries from the earliest new
    record minus the longest window and copies the earlier ones (see touched_users).
    It recomputes everyone when the as-of instant moved back, when the rows were computed from other
    definitions (definitions_digest), and on every run when a step filter is relative to the as-of instant
    (older_than_days, within_days), since such a filter changes its answer for users nobody touched.
    last_event_at and loaded_at are the user's latest event and load (every user with an event has a row),
    so the table's maxima are exact watermarks. A touched user left with no events gets a placeholder
    (null last_event_at) that delete+insert uses and a post-hook deletes. -#}
{% macro funnel_entries(funnels, max_steps) %}
    {%- set as_of_sql = 'as_of.evaluated_at' -%}
    {%- set steps = [] -%}
    {%- for funnel in funnels %}{% do steps.extend(funnel.steps) %}{% endfor -%}
    {%- set spec = segment_event_columns(steps) %}
    {%- set digest = local_md5(tojson(funnels)) %}
    {%- set max_window_seconds = funnels | map(attribute='window_seconds') | max if funnels else 0 %}
    {%- set relative_ops = [] %}
    {%- for step in steps %}{% for filter in step.where if filter.op in ('older_than_days', 'within_days') %}{% do relative_ops.append(filter.op) %}{% endfor %}{% endfor %}
    with

    as_of as (

        select {{ rekindle_as_of() }} as evaluated_at

    ),

    {% if is_incremental() %}
    {{ incremental_scope('last_event_at') }}

    {#- a constant (incremental_constant), so that the filter on record_users below can skip row groups -#}
    {%- set everyone = incremental_constant(
        '(select ' ~ incremental_watermark('last_event_at').as_of_moved_back
        ~ ' or ' ~ ('true' if relative_ops else 'false')
        ~ ' or exists (select 1 from ' ~ this ~ ' as entries where entries.definitions_digest <> '
        ~ segment_literal(digest) ~ '))',
        'boolean',
    ) %}
    recompute_all as (

        select {{ everyone }} as everyone

    ),

    {#- per touched user, the step-1 time from which entries are recomputed: all of them (from 1900) for a
        user who owns or owned records on a re-resolved device (int_identity__device_owners, through
        incremental_reresolved_users) and when everyone is recomputed; otherwise the
        earliest new or newly visible record minus the longest funnel window. An earlier entry cannot change:
        its steps lie within its window, before any new event, and a step is the earliest event after the
        step before it, so a later event is never chosen instead. -#}
    touched_users as (

        select
            user_id,
            min(recompute_from) as recompute_from
        from (
            select
                record_users.user_id,
                {{ dbt.dateadd('second', -1 * max_window_seconds, 'record_users.record_at') }} as recompute_from
            from {{ ref('int_identity__record_users') }} as record_users
            where {{ incremental_in_scope('record_users.loaded_at', 'record_users.record_at', watermark_of='last_event_at') }}
            union all
            {#- a branch of its own, not an `or` in the filter above: DuckDB prunes row groups on that filter only
                without a constant or'ed around it (at 10M events: 4 of 85 row groups read instead of 85) #}
            select
                record_users.user_id,
                cast('1900-01-01' as timestamp) as recompute_from
            from {{ ref('int_identity__record_users') }} as record_users
            where {{ everyone }}
            union all
            {#- the owners of re-resolved devices (their records' users) and, on a rerun, everyone held #}
            select
                reresolved.user_id,
                cast('1900-01-01' as timestamp) as recompute_from
            from ({{ incremental_reresolved_users() }}) as reresolved
            union all
            select
                entries.user_id,
                cast('1900-01-01' as timestamp) as recompute_from
            from {{ this }} as entries
            where (select recompute_all.everyone from recompute_all)
        ) as touches
        group by user_id

    ),

    touched_events as (

        select events.*
        from {{ ref('fct_events') }} as events
        inner join touched_users on events.user_id = touched_users.user_id
        where events.event_at >= touched_users.recompute_from

    ),

    {#- the entries before a touched user's recompute_from, kept as they are -#}
    kept_entries as (

        select
            entries.funnel_name,
            entries.user_id,
            {%- for k in range(1, max_steps + 1) %}
            entries.step_{{ k }}_at{{ ',' if not loop.last }}
            {%- endfor %}
        from {{ this }} as entries
        inner join touched_users on entries.user_id = touched_users.user_id
        where entries.step_1_at < touched_users.recompute_from

    ),
    {% endif %}

    {#- the user's latest event and load, from the user-days (every event is in one) -#}
    users as (

        select
            user_id,
            max(last_event_at) as last_event_at,
            max(loaded_at) as loaded_at
        from {{ ref('int_reports__user_event_days') }}
        {%- if is_incremental() %}
        where user_id in (select touched_users.user_id from touched_users)
        {%- endif %}
        group by user_id

    ),

    {#- the events some step reads, each filtered property taken out of the JSON once -#}
    {{ segment_events(spec, 'touched_events' if is_incremental() else none) }},

    {%- for funnel in funnels %}
    {%- set f = loop.index %}
    {%- for step in funnel.steps %}
    {%- set k = loop.index %}

    funnel_{{ f }}_step_{{ k }}_events as (

        select
            events.user_id,
            events.event_at
        from events
        cross join as_of
        where {{ segment_event_match(step, as_of_sql, spec.columns, spec.numeric) }}

    ),

    {%- if k == 1 %}

    {#- events at the same instant are one entry: they reach the same steps -#}
    funnel_{{ f }}_reached_1 as (

        select distinct
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
                step_1_at,
                step_{{ k - 1 }}_at as anchor_at,
                1 as is_entry
            from funnel_{{ f }}_reached_{{ k - 1 }}
            union all
            select
                user_id,
                cast(null as {{ dbt.type_timestamp() }}) as step_1_at,
                event_at as anchor_at,
                0 as is_entry
            from funnel_{{ f }}_step_{{ k }}_events
        ) as candidates

    ),

    funnel_{{ f }}_reached_{{ k }} as (

        select
            user_id,
            step_1_at,
            next_at as step_{{ k }}_at
        from funnel_{{ f }}_next_{{ k }}
        where
            is_entry = 1
            and next_at <= {{ dbt.dateadd('second', funnel.window_seconds, 'step_1_at') }}

    ),
    {%- endif %}
    {%- endfor %}

    funnel_{{ f }} as (

        select
            {{ segment_literal(funnel.name) }} as funnel_name,
            funnel_{{ f }}_reached_1.user_id,
            {%- for k in range(1, max_steps + 1) %}
            {%- if k == 1 %}
            funnel_{{ f }}_reached_1.step_1_at
            {%- elif k <= funnel.steps | length %}
            funnel_{{ f }}_reached_{{ k }}.step_{{ k }}_at
            {%- else %}
            cast(null as {{ dbt.type_timestamp() }}) as step_{{ k }}_at
            {%- endif %}{{ ',' if not loop.last }}
            {%- endfor %}
        from funnel_{{ f }}_reached_1
        {%- for k in range(2, funnel.steps | length + 1) %}
        left join funnel_{{ f }}_reached_{{ k }}
            on
                funnel_{{ f }}_reached_1.user_id = funnel_{{ f }}_reached_{{ k }}.user_id
                and funnel_{{ f }}_reached_1.step_1_at = funnel_{{ f }}_reached_{{ k }}.step_1_at
        {%- endfor %}

    ),
    {%- endfor %}

    computed_entries as (

        {%- for funnel in funnels %}
        select * from funnel_{{ loop.index }}
        union all
        {%- endfor %}
        {%- if is_incremental() %}
        select * from kept_entries
        {%- else %}
        select
            cast(null as {{ dbt.type_string() }}) as funnel_name,
            cast(null as {{ dbt.type_string() }}) as user_id,
            {%- for k in range(1, max_steps + 1) %}
            cast(null as {{ dbt.type_timestamp() }}) as step_{{ k }}_at{{ ',' if not loop.last }}
            {%- endfor %}
        where false
        {%- endif %}

    ),

    entries as (

        select * from computed_entries
        union all
        -- a user with events but no entry keeps a row: the watermarks are maxima over every user
        select
            cast(null as {{ dbt.type_string() }}) as funnel_name,
            users.user_id,
            {%- for k in range(1, max_steps + 1) %}
            cast(null as {{ dbt.type_timestamp() }}) as step_{{ k }}_at{{ ',' if not loop.last }}
            {%- endfor %}
        from users
        where users.user_id not in (select computed_entries.user_id from computed_entries)

    ),

    final as (

        select
            entries.*,
            users.last_event_at,
            users.loaded_at,
            {{ segment_literal(digest) }} as definitions_digest
        from entries
        inner join users on entries.user_id = users.user_id

    )

    select * from final
    {%- if is_incremental() %}
    union all
    -- placeholders for touched users left with no events (see the top): removed by the post-hook
    select
        cast(null as {{ dbt.type_string() }}) as funnel_name,
        touched_users.user_id,
        {%- for k in range(1, max_steps + 1) %}
        cast(null as {{ dbt.type_timestamp() }}) as step_{{ k }}_at,
        {%- endfor %}
        cast(null as {{ dbt.type_timestamp() }}) as last_event_at,
        cast(null as {{ dbt.type_timestamp() }}) as loaded_at,
        {{ segment_literal(digest) }} as definitions_digest
    from touched_users
    where touched_users.user_id not in (select users.user_id from users)
    {%- endif %}
{% endmacro %}
