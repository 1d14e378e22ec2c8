-- One row per message of a campaign to a user: when it was sent, delivered, viewed and clicked.
-- Messages come from two places. CleverTap's system events: a `Notification Sent` is a message, and every
-- `Notification Viewed|Clicked` belongs to the latest message sent to that user for that campaign before it;
-- views or clicks with no send before them (an export that lacks the send) form one message with no
-- sent_at. And the senders' own log (table sync_log, when it exists): each `send` row naming a campaign is a
-- message, sent or failed. CleverTap's upload format has no delivery event, so a message counts as
-- delivered when it was sent and not reported failed (delivered_at = sent_at), or when it was viewed or
-- clicked; a click implies a view (viewed_at is never later than clicked_at).
with

campaigns as (

    select * from {{ ref('dim_campaigns') }}

),

notification_events as (

    select
        campaign_id,
        user_id,
        event_name,
        event_at
    from {{ ref('fct_events') }}
    where
        event_name in ('Notification Sent', 'Notification Viewed', 'Notification Clicked')
        and campaign_id is not null

),

sync_log as (

    {{ select_optional_relation(source('rekindle_senders', 'sync_log'), {
        'destination': dbt.type_string(),
        'campaign_id': dbt.type_string(),
        'user_id': dbt.type_string(),
        'action': dbt.type_string(),
        'status': dbt.type_string(),
        'reason': dbt.type_string(),
        'logged_at': 'timestamp',
    }) }}

),

sends as (

    select
        campaign_id,
        user_id,
        'clevertap' as message_source,
        cast(null as {{ dbt.type_string() }}) as destination,
        'sent' as send_status,
        cast(null as {{ dbt.type_string() }}) as failure_reason,
        event_at as anchored_at
    from notification_events
    where event_name = 'Notification Sent'

    union all

    select
        campaign_id,
        user_id,
        'rekindle_sync' as message_source,
        destination,
        case when status = 'sent' then 'sent' else 'failed' end as send_status,
        case when status = 'sent' then null else coalesce(reason, 'status ' || status) end as failure_reason,
        logged_at as anchored_at
    from sync_log
    where action = 'send' and campaign_id is not null and status in ('sent', 'failed')

),

interactions as (

    select * from notification_events
    where event_name in ('Notification Viewed', 'Notification Clicked')

),

first_sends as (

    select
        campaign_id,
        user_id,
        min(anchored_at) as first_sent_at
    from sends
    where send_status = 'sent'
    group by campaign_id, user_id

),

-- one message for the views and clicks that came before any send (or without one)
unsent as (

    select
        interactions.campaign_id,
        interactions.user_id,
        'clevertap' as message_source,
        cast(null as {{ dbt.type_string() }}) as destination,
        'unknown' as send_status,
        cast(null as {{ dbt.type_string() }}) as failure_reason,
        min(interactions.event_at) as anchored_at
    from interactions
    left join first_sends
        on interactions.campaign_id = first_sends.campaign_id and interactions.user_id = first_sends.user_id
    where first_sends.first_sent_at is null or interactions.event_at < first_sends.first_sent_at
    group by interactions.campaign_id, interactions.user_id

),

messages as (

    select
        *,
        row_number() over (
            partition by campaign_id, user_id
            order by anchored_at, message_source, destination, send_status, failure_reason
        ) as message_number
    from (
        select * from sends
        union all
        select * from unsent
    ) as anchored

),

-- views and clicks attach to the latest message that reached the user: failed sends reach nobody
reaching as (

    select
        campaign_id,
        user_id,
        message_number,
        anchored_at,
        lead(anchored_at) over (partition by campaign_id, user_id order by anchored_at, message_number)
            as next_anchored_at
    from messages
    where send_status <> 'failed'

),

interactions_by_message as (

    select
        reaching.campaign_id,
        reaching.user_id,
        reaching.message_number,
        min(case when interactions.event_name = 'Notification Viewed' then interactions.event_at end)
            as first_viewed_at,
        min(case when interactions.event_name = 'Notification Clicked' then interactions.event_at end)
            as clicked_at
    from reaching
    inner join interactions
        on
            reaching.campaign_id = interactions.campaign_id
            and reaching.user_id = interactions.user_id
            and reaching.anchored_at <= interactions.event_at
            and (reaching.next_anchored_at is null or reaching.next_anchored_at > interactions.event_at)
    group by reaching.campaign_id, reaching.user_id, reaching.message_number

),

final as (

    select
        messages.campaign_id || ':' || messages.user_id || ':' || cast(messages.message_number as {{ dbt.type_string() }})
            as message_id,
        messages.campaign_id,
        messages.user_id,
        campaigns.channel,
        messages.message_number,
        messages.message_source,
        messages.destination,
        messages.send_status,
        messages.failure_reason,
        case when messages.send_status <> 'unknown' then messages.anchored_at end as attempted_at,
        case when messages.send_status = 'sent' then messages.anchored_at end as sent_at,
        case
            when messages.send_status = 'sent' then messages.anchored_at
            when messages.send_status = 'unknown'
                then
                    case
                        when interactions_by_message.clicked_at < interactions_by_message.first_viewed_at
                            then interactions_by_message.clicked_at
                        else coalesce(interactions_by_message.first_viewed_at, interactions_by_message.clicked_at)
                    end
        end as delivered_at,
        case
            when interactions_by_message.clicked_at < interactions_by_message.first_viewed_at
                then interactions_by_message.clicked_at
            else coalesce(interactions_by_message.first_viewed_at, interactions_by_message.clicked_at)
        end as viewed_at,
        interactions_by_message.clicked_at
    from messages
    left join campaigns on messages.campaign_id = campaigns.campaign_id
    left join interactions_by_message
        on
            messages.campaign_id = interactions_by_message.campaign_id
            and messages.user_id = interactions_by_message.user_id
            and messages.message_number = interactions_by_message.message_number

)

select * from final
