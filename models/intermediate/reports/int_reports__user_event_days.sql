-- One row per user, event name and day: the one scan of fct_events that the engagement and retention
-- reports share. Days are UTC dates. At 10M events this is a few hundred thousand rows, so the reports
-- work on user-days instead of joining events to events.
{{ config(materialized='table') }}

with

events as (

    select
        user_id,
        event_name,
        cast(event_at as date) as activity_date
    from {{ ref('fct_events') }}

),

final as (

    select
        user_id,
        event_name,
        activity_date,
        count(*) as event_count
    from events
    group by user_id, event_name, activity_date

)

select * from final
