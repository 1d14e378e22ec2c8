-- One row per message of a campaign to a user: when it was sent, delivered, viewed and clicked (the rows of
-- fct_campaign_messages, which adds the campaign's channel).
-- Messages come from two places. CleverTap's system events: a `Notification Sent` is a message, and every
-- `Notification Viewed|Clicked` belongs to the latest message sent to that user for that campaign before it;
-- views or clicks with no send before them (an export that lacks the send) form one message with no
-- sent_at. And the senders' own log (table sync_log, when it exists): each `send` row naming a campaign is a
-- message, sent or failed. CleverTap's upload format has no delivery event, so a message counts as
-- delivered when it was sent and not reported failed (delivered_at = sent_at), or when it was viewed or
-- clicked; a click implies a view (viewed_at is never later than clicked_at).
--
-- Incremental by campaign and user: a pair's messages depend only on that pair's notification events
-- (int_campaigns__notification_events) and sync_log sends, so a run recomputes the pairs that
--   gained an event: loaded since the watermark, or visible since the as-of instant moved forward;
--   lost one: a rerun of an earlier day deleted the events after it (the pair's last_event_at is later);
--   gained a sync_log send: logged since the latest one held, minus the lookback (sends are never deleted);
--   have or had an event without an identity: only such an event can move to another user (an event with
--   an identity belongs to it), so these pairs, before and after, are recomputed on every run, which also
--   covers a rerun that takes back the login an anonymous event was adopted by.
-- A recomputed pair left with no message gets a placeholder row (null message_number) so that delete+insert
-- removes its old rows; a post-hook deletes the placeholders. The channel is not stored here but joined in
-- fct_campaign_messages, so a campaign edit needs no recompute. tests/test_incremental.py holds it equal to
-- a full refresh.
-- rekindle_as_of() reads the latest event when no as-of instant is given (dbt docs, ad-hoc runs):
-- depends_on: {{ ref('stg_clevertap__events') }}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['campaign_id', 'user_id'],
    post_hook="delete from {{ this }} where message_number is null",
) }}

with

{% if is_incremental() %}
    {%- set constants = incremental_watermark('last_event_at') %}
    {#- sync_log is appended with the senders' clock: its watermark is the latest send held, minus the lookback #}
    {%- set logged_since = incremental_constant(
        "(select " ~ dbt.dateadd(
            'hour',
            -1 * var('rekindle_incremental_lookback_hours'),
            "coalesce(max(attempted_at), cast('1900-01-01' as timestamp))",
        ) ~ " from " ~ this ~ " where message_source = 'rekindle_sync')"
    ) %}
{% endif %}

notification_events as (

    select * from {{ ref('int_campaigns__notification_events') }}

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

sync_sends as (

    select * from sync_log
    where action = 'send' and campaign_id is not null and status in ('sent', 'failed')

),

{% if is_incremental() %}
touched_pairs as (

    select
        campaign_id,
        user_id
    from notification_events
    where
        loaded_at > {{ constants.loaded_since }}
        or event_at > {{ constants.record_since }}
        or resolved_by <> 'identity'
    union
    select
        campaign_id,
        user_id
    from {{ this }}
    where has_unidentified_events or last_event_at > {{ rekindle_as_of() }}
    union
    select
        campaign_id,
        user_id
    from sync_sends
    where logged_at > {{ logged_since }}

),
{% endif %}

pair_events as (

    select
        campaign_id,
        user_id,
        resolved_by,
        event_name,
        event_at,
        loaded_at
    from notification_events
    {% if is_incremental() %}
        where exists (
            select 1
            from touched_pairs
            where
                touched_pairs.campaign_id = notification_events.campaign_id
                and touched_pairs.user_id = notification_events.user_id
        )
    {% endif %}

),

pair_sync_sends as (

    select * from sync_sends
    {% if is_incremental() %}
        where exists (
            select 1
            from touched_pairs
            where touched_pairs.campaign_id = sync_sends.campaign_id and touched_pairs.user_id = sync_sends.user_id
        )
    {% endif %}

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
    from pair_events
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
    from pair_sync_sends

),

interactions as (

    select * from pair_events
    where event_name in ('Notification Viewed', 'Notification Clicked')

),

-- the watermarks of a pair's rows (the pair is computed from all its events): their latest load and time,
-- and whether one of them may move to another user
pair_watermarks as (

    select
        campaign_id,
        user_id,
        max(loaded_at) as loaded_at,
        max(event_at) as last_event_at,
        max(case when resolved_by <> 'identity' then 1 else 0 end) = 1 as has_unidentified_events
    from pair_events
    group by campaign_id, user_id

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
        interactions_by_message.clicked_at,
        pair_watermarks.loaded_at,
        pair_watermarks.last_event_at,
        coalesce(pair_watermarks.has_unidentified_events, false) as has_unidentified_events
    from messages
    left join interactions_by_message
        on
            messages.campaign_id = interactions_by_message.campaign_id
            and messages.user_id = interactions_by_message.user_id
            and messages.message_number = interactions_by_message.message_number
    left join pair_watermarks
        on messages.campaign_id = pair_watermarks.campaign_id and messages.user_id = pair_watermarks.user_id

)

select * from final
{% if is_incremental() %}
    union all
    -- placeholders for recomputed pairs left with no message (see the top): removed by the post-hook
    select
        null as message_id,
        touched_pairs.campaign_id,
        touched_pairs.user_id,
        null as message_number,
        null as message_source,
        null as destination,
        null as send_status,
        null as failure_reason,
        null as attempted_at,
        null as sent_at,
        null as delivered_at,
        null as viewed_at,
        null as clicked_at,
        null as loaded_at,
        null as last_event_at,
        null as has_unidentified_events
    from touched_pairs
    where not exists (
        select 1
        from final
        where final.campaign_id = touched_pairs.campaign_id and final.user_id = touched_pairs.user_id
    )
{% endif %}
