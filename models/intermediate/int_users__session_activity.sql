-- One row per user with sessions: what dim_users and user_lifecycle need from them, in one GROUP BY of
-- fct_sessions. Both used to summarise the sessions themselves, user_lifecycle with two window functions
-- that sorted every session; at 10 million events that was about 2 s of every run, the marts being rebuilt
-- in full.
--
-- A user's sessions are numbered 1..n in start order (fct_sessions keeps them contiguous), so the session
-- before the latest is number n - 1: its end is where the silence before the latest session started.
--
-- Incremental by user (delete+insert on user_id): a run recomputes, from all their sessions, the users whose
-- sessions fct_sessions may have rewritten since the watermark. Those are the users of the sessions loaded or
-- made visible since then (fct_sessions recomputes a user who gained events from the first session those
-- events can touch, and the session holding a new event carries its loaded_at, or its end is past the
-- previous as-of instant), and the users whose records may have moved (the owners of re-resolved devices;
-- everyone on a rerun of an earlier day: macros/incremental_reresolved_users.sql), the users fct_sessions
-- recomputes from their first event. A touched user left with no session gets a tombstone (session_count
-- null) so that their row goes too; the post-hook deletes the tombstones.
-- The incremental filter reads these too (macros/incremental_scope.sql):
-- depends_on: {{ ref('int_identity__device_switches') }}
-- depends_on: {{ ref('int_identity__device_owners') }}
-- rekindle_as_of() reads the latest event when no as-of instant is given (dbt docs, ad-hoc runs):
-- depends_on: {{ ref('stg_clevertap__events') }}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='user_id',
    post_hook="delete from {{ this }} where session_count is null",
) }}

with

{% if is_incremental() %}
{{ incremental_scope('last_seen_at') }}

touched_users as (

    select changed_sessions.user_id
    from {{ ref('fct_sessions') }} as changed_sessions
    -- sessions rewritten by fct_sessions' delete+insert sit at the table's end, so with constants this
    -- reads its last row groups only
    where {{ incremental_in_scope('changed_sessions.loaded_at', 'changed_sessions.ended_at', watermark_of='last_seen_at') }}
    union
    {{ incremental_reresolved_users() }}

),
{% endif %}

sessions as (

    select
        user_id,
        session_number,
        started_at,
        ended_at,
        first_identified_at,
        event_count,
        platform,
        loaded_at
    from {{ ref('fct_sessions') }}
    {% if is_incremental() %}
        where user_id in (select touched_users.user_id from touched_users)
    {% endif %}

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
        {{ value_at_latest('platform', 'started_at') }} as platform,
        max(loaded_at) as loaded_at
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
        users.platform,
        users.loaded_at
    from users
    left join sessions as previous_sessions
        on
            users.user_id = previous_sessions.user_id
            and previous_sessions.session_number = users.latest_session_number - 1

)

select * from final
{% if is_incremental() %}
    union all
    -- tombstones: touched users left with no session (see the top)
    select
        touched_users.user_id,
        null as first_seen_at,
        null as last_seen_at,
        null as latest_session_at,
        null as silence_started_at,
        null as first_identified_event_at,
        null as event_count,
        null as session_count,
        null as platform,
        null as loaded_at
    from touched_users
    where touched_users.user_id not in (select final.user_id from final)
{% endif %}
