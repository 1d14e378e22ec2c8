-- One row per message of a campaign to a user (int_campaigns__messages, which says how messages are
-- derived), with the campaign's channel. A view: the messages are kept incrementally underneath, and the
-- channel joined here follows an edited campaign file without recomputing a message (at 10 million events
-- the table this was cost about 1.3 s of every dbt build).
{{ config(materialized='view') }}

with

messages as (

    select * from {{ ref('int_campaigns__messages') }}

),

campaigns as (

    select * from {{ ref('dim_campaigns') }}

),

final as (

    select
        messages.message_id,
        messages.campaign_id,
        messages.user_id,
        campaigns.channel,
        messages.message_number,
        messages.message_source,
        messages.destination,
        messages.send_status,
        messages.failure_reason,
        messages.attempted_at,
        messages.sent_at,
        messages.delivered_at,
        messages.viewed_at,
        messages.clicked_at
    from messages
    left join campaigns on messages.campaign_id = campaigns.campaign_id

)

select * from final
