-- A table, not a view: marts read it several times, and Postgres' planner misjudges the view stack
-- (a nested loop that reran identity resolution per order made fct_orders 1,000x slower).
{{ config(materialized='table') }}

with

events as (

    select * from {{ ref('stg_clevertap__events') }}

),

record_users as (

    select * from {{ ref('int_identity__record_users') }}
    where record_kind = 'event'

),

final as (

    select
        events.event_key,
        record_users.user_id,
        record_users.resolved_by,
        events.event_name,
        events.event_at,
        events.identity,
        events.device_id,
        events.amount,
        events.charged_id,
        events.campaign_id,
        events.campaign_type,
        events.properties
    from events
    inner join record_users on events.event_key = record_users.record_key

)

select * from final
