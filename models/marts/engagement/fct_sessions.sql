-- Sessions: a user's events with no gap longer than var rekindle_session_timeout_minutes (30, as
-- CleverTap and Google Analytics). Keyed by user and start time, so a late event that extends a
-- session keeps its id, while one that opens a new session before it adds a new id.
--
-- Incremental by user, from the first session that can change: new events can only extend, merge or
-- add sessions around themselves, so a user who only gained events keeps every session that ended
-- more than a timeout before their earliest new event (those are a prefix of their sessions, numbered
-- 1..n) and recomputes the rest from their events. A re-resolved device moves events between users,
-- so everyone who owns or owned records on it is recomputed from their first event (and everyone on a
-- rerun of an earlier day). Rows are replaced by session_id; a recomputed user's old session that no
-- longer exists (merged away, or its events moved to another user) is sent as a tombstone (its id,
-- event_count null) so that delete+insert removes it, and a post-hook deletes the tombstones; another
-- deletes the sessions after the as-of instant.
-- The incremental filter reads these too (macros/incremental_scope.sql):
-- depends_on: {{ ref('stg_clevertap__events') }}
-- depends_on: {{ ref('stg_clevertap__profiles') }}
-- depends_on: {{ ref('int_identity__device_switches') }}
-- depends_on: {{ ref('int_identity__record_users') }}
-- depends_on: {{ ref('int_identity__device_owners') }}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='session_id',
    post_hook=[
        "{{ delete_after_as_of('started_at') }}",
        "delete from {{ this }} where event_count is null",
    ],
) }}

with

{% if is_incremental() %}
{{ incremental_scope('ended_at') }}

-- users recomputed from their first event (macros/incremental_reresolved_users.sql)
rebuilt_users as (

    {{ incremental_reresolved_users() }}

),

-- the other users with new or newly visible events, and the earliest of those events
gained_events as (

    select
        record_users.user_id,
        min(record_users.record_at) as earliest_new_at
    from {{ ref('int_identity__record_users') }} as record_users
    where
        record_users.record_kind = 'event'
        -- the records of re-resolved devices belong to their owners, all in rebuilt_users
        and {{ incremental_in_scope('record_users.loaded_at', 'record_users.record_at', watermark_of='ended_at') }}
        and record_users.user_id not in (select rebuilt_users.user_id from rebuilt_users)
    group by record_users.user_id

),

-- Where each touched user's recomputation starts (null: their first event) and how many sessions they
-- keep before it. A session that ended within a timeout of the earliest new event can be extended or
-- merged by it, and so can every later one; the recomputation starts at the first of them.
touched_users as (

    select
        user_id,
        cast(null as timestamp) as recompute_from,
        0 as sessions_kept
    from rebuilt_users
    union all
    select
        gained_events.user_id,
        least(
            gained_events.earliest_new_at,
            min(case when held.ended_at >= gained_events.earliest_new_before then held.started_at end)
        ) as recompute_from,
        count(case when held.ended_at < gained_events.earliest_new_before then 1 end) as sessions_kept
    from (
        select
            *,
            {{ dbt.dateadd('minute', -var('rekindle_session_timeout_minutes'), 'earliest_new_at') }}
                as earliest_new_before
        from gained_events
    ) as gained_events
    left join {{ this }} as held on gained_events.user_id = held.user_id
    group by gained_events.user_id, gained_events.earliest_new_at

),
{% endif %}

events as (

    select
        events.user_id,
        events.event_key,
        events.event_name,
        events.event_at,
        events.amount,
        events.identity,
        {{ json_text('events.properties', "'Platform'") }} as platform,
        events.loaded_at,
        {% if is_incremental() %}touched_users.sessions_kept{% else %}0{% endif %} as sessions_before
    from {{ ref('fct_events') }} as events
    {% if is_incremental() %}
        inner join touched_users on events.user_id = touched_users.user_id
        where touched_users.recompute_from is null or events.event_at >= touched_users.recompute_from
    {% endif %}

),

gaps as (

    select
        *,
        lag(event_at) over (partition by user_id order by event_at, event_key) as previous_at
    from events

),

starts as (

    select
        *,
        case
            when previous_at is null then 1
            when
                event_at > {{ dbt.dateadd('minute', var('rekindle_session_timeout_minutes'), 'previous_at') }}
                then 1
            else 0
        end as is_session_start
    from gaps

),

numbered as (

    select
        *,
        sessions_before + sum(is_session_start) over (
            partition by user_id order by event_at, event_key rows between unbounded preceding and current row
        ) as session_number
    from starts

),

sessions as (

    select
        user_id,
        session_number,
        min(event_at) as started_at,
        max(event_at) as ended_at,
        count(*) as event_count,
        cast(sum(case when event_name = 'Charged' then 1 else 0 end) as {{ dbt.type_bigint() }}) as order_events,
        coalesce(sum(case when event_name = 'Charged' then amount end), 0) as revenue,
        min(case when identity is not null then event_at end) as first_identified_at,
        max(loaded_at) as loaded_at
    from numbered
    group by user_id, session_number

),

-- the platform of the session's latest event that says one (App Launched and friends carry `Platform`)
platforms as (

    select
        user_id,
        session_number,
        platform
    from (
        select
            user_id,
            session_number,
            platform,
            row_number() over (
                partition by user_id, session_number order by event_at desc, event_key desc
            ) as recency
        from numbered
        where platform is not null
    ) as latest
    where recency = 1

),

final as (

    select
        md5(sessions.user_id || '|' || {{ dbt.cast('sessions.started_at', dbt.type_string()) }}) as session_id,
        sessions.user_id,
        sessions.session_number,
        sessions.started_at,
        sessions.ended_at,
        {{ dbt.datediff('sessions.started_at', 'sessions.ended_at', 'second') }} as duration_seconds,
        sessions.event_count,
        sessions.order_events,
        sessions.revenue,
        platforms.platform,
        sessions.first_identified_at,
        sessions.loaded_at
    from sessions
    left join platforms
        on sessions.user_id = platforms.user_id and sessions.session_number = platforms.session_number

)

select * from final
{% if is_incremental() %}
    union all
    -- tombstones: the recomputed span's old sessions that no longer exist (see the top)
    select
        held.session_id,
        held.user_id,
        null as session_number,
        null as started_at,
        null as ended_at,
        null as duration_seconds,
        null as event_count,
        null as order_events,
        null as revenue,
        null as platform,
        null as first_identified_at,
        null as loaded_at
    from {{ this }} as held
    inner join touched_users on held.user_id = touched_users.user_id
    where
        (touched_users.recompute_from is null or held.started_at >= touched_users.recompute_from)
        and held.session_id not in (select final.session_id from final)
{% endif %}
