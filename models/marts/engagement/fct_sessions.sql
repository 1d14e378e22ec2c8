-- Sessions: a user's events with no gap longer than var rekindle_session_timeout_minutes (30, as
-- CleverTap and Google Analytics). Keyed by user and start time, so a late event that extends a
-- session keeps its id, while one that opens a new session before it adds a new id.
with

events as (

    select
        user_id,
        event_key,
        event_name,
        event_at,
        amount
    from {{ ref('int_events__resolved') }}

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
        coalesce(sum(case when event_name = 'Charged' then amount end), 0) as revenue
    from numbered
    group by user_id, session_number

),

final as (

    select
        md5(user_id || '|' || {{ dbt.cast('started_at', dbt.type_string()) }}) as session_id,
        user_id,
        session_number,
        started_at,
        ended_at,
        {{ dbt.datediff('started_at', 'ended_at', 'second') }} as duration_seconds,
        event_count,
        order_events,
        revenue
    from sessions

)

select * from final
