-- One row per user with sessions: what dim_users and user_lifecycle need from them, in one scan of
-- fct_sessions and one GROUP BY. Both used to summarise the sessions themselves, user_lifecycle with two
-- window functions that sorted every session; at 10 million events that was about 2 s of every run, the
-- marts being rebuilt in full.
--
-- A user's sessions are numbered 1..n in start order (fct_sessions keeps them contiguous), so the session
-- before the latest is number n - 1: its end is where the silence before the latest session started.
-- A table, not a view like most intermediate models: two marts read it.
{{ config(materialized='table') }}

with

sessions as (

    select * from {{ ref('fct_sessions') }}

),

users as (

    select
        user_id,
        min(started_at) as first_seen_at,
        max(ended_at) as last_seen_at,
        max(started_at) as latest_session_at,
        min(first_identified_at) as first_identified_event_at,
        cast(sum(event_count) as {{ dbt.type_bigint() }}) as event_count,
        count(*) as session_count,
        max(session_number) as latest_session_number,
        {{ value_at_latest('platform', 'started_at') }} as platform
    from sessions
    group by user_id

),

final as (

    select
        users.user_id,
        users.first_seen_at,
        users.last_seen_at,
        users.latest_session_at,
        previous_sessions.ended_at as silence_started_at,
        users.first_identified_event_at,
        users.event_count,
        users.session_count,
        users.platform
    from users
    left join sessions as previous_sessions
        on
            users.user_id = previous_sessions.user_id
            and previous_sessions.session_number = users.latest_session_number - 1

)

select * from final
