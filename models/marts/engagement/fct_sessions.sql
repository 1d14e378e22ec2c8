-- Sessions: a user's events with no gap longer than var rekindle_session_timeout_minutes (30, as
-- CleverTap and Google Analytics). Keyed by user and start time, so a late event that extends a
-- session keeps its id, while one that opens a new session before it adds a new id.
--
-- Incremental by user: a late event can merge or split sessions and a re-resolved device moves events
-- between users, so a run recomputes the full history of every user it touches and replaces all of
-- that user's sessions (delete+insert on user_id, on purpose: session_id is the row key and is tested
-- unique, user_id is the unit of replacement). A touched user left with no events (an anonymous device
-- whose whole history a login adopted) gets a placeholder row with a null session_id, so that
-- delete+insert removes their sessions too; a post-hook then deletes the placeholders, and another the
-- sessions after the as-of instant.
-- The incremental filter reads these too (macros/incremental_scope.sql):
-- depends_on: {{ ref('stg_clevertap__events') }}
-- depends_on: {{ ref('stg_clevertap__profiles') }}
-- depends_on: {{ ref('int_identity__device_switches') }}
-- depends_on: {{ ref('int_identity__record_users') }}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='user_id',
    post_hook=[
        "{{ delete_after_as_of('started_at') }}",
        "delete from {{ this }} where session_id is null",
    ],
) }}

with

{% if is_incremental() %}
{{ incremental_scope('ended_at') }}

-- The users whose sessions may differ: owners of new or newly visible records, and everyone who owns
-- or owned records on a device whose identity history changed. A past owner of a device's anonymous
-- history logged in on that device, so it is among the device's record owners, or is its anon: user.
touched_users as (

    select record_users.user_id
    from {{ ref('int_identity__record_users') }} as record_users
    cross join watermark
    where {{ incremental_in_scope('record_users.loaded_at', 'record_users.record_at', 'record_users.device_id') }}
    union
    select 'anon:' || device_id from changed_devices
    union
    -- a rerun of an earlier day re-decides everyone, including users who have no events that early
    select sessions.user_id from {{ this }} as sessions
    where (select watermark.as_of_moved_back from watermark)

),
{% endif %}

events as (

    select
        user_id,
        event_key,
        event_name,
        event_at,
        amount,
        identity,
        {{ json_text('properties', "'Platform'") }} as platform,
        loaded_at
    from {{ ref('fct_events') }}
    {% if is_incremental() %}
        where user_id in (select touched_users.user_id from touched_users)
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
        sum(is_session_start) over (
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
    -- placeholders for touched users left with no events (see the top): removed by the post-hook
    select
        null as session_id,
        touched_users.user_id,
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
    from touched_users
    where touched_users.user_id not in (select events.user_id from events)
{% endif %}
