-- One row per campaign: delivery funnel, conversions after the message, and an intent-to-treat
-- comparison of the target group with the campaign's control group.
--
-- Qualified users: in this first slice a campaign's audience is `all_users`, the users identified
-- before the campaign started; other segments need segment history (issue #5) and report no
-- qualified/control figures yet (lift_note says so). Control users are the qualified users whose
-- hash bucket of "campaign_id:user_id" falls below control_group_pct (macro hash_bucket).
with

campaigns as (

    select * from {{ ref('dim_campaigns') }}

),

users as (

    select * from {{ ref('dim_users') }}

),

events as (

    select * from {{ ref('fct_events') }}

),

messages as (

    select
        campaign_id,
        user_id,
        min(case when event_name = 'Notification Sent' then event_at end) as sent_at,
        min(case when event_name = 'Notification Viewed' then event_at end) as viewed_at,
        min(case when event_name = 'Notification Clicked' then event_at end) as clicked_at
    from events
    where
        event_name in ('Notification Sent', 'Notification Viewed', 'Notification Clicked')
        and campaign_id is not null
    group by campaign_id, user_id

),

qualified as (

    select
        campaigns.campaign_id,
        users.user_id,
        {{ hash_bucket("campaigns.campaign_id || ':' || users.user_id") }} < campaigns.control_group_pct
            as is_control
    from campaigns
    inner join users
        on
            users.is_identified
            and users.identified_at < cast(campaigns.start_date as timestamp)
    where campaigns.segment_name = 'all_users'

),

goal_events as (

    select
        campaigns.campaign_id,
        events.user_id,
        events.event_at,
        coalesce(events.amount, 0) as amount
    from events
    inner join campaigns
        on
            events.event_name = campaigns.goal_event
            and events.event_at >= cast(campaigns.start_date as timestamp)
            and {{ matches_goal_filter('events.properties', 'campaigns') }}

),

-- conversions after the user's own message (CleverTap's "converted" counts)
message_conversions as (

    select
        messages.campaign_id,
        messages.user_id,
        count(*) as conversions,
        sum(goal_events.amount) as revenue
    from messages
    inner join campaigns on messages.campaign_id = campaigns.campaign_id
    inner join goal_events
        on
            messages.campaign_id = goal_events.campaign_id
            and messages.user_id = goal_events.user_id
            and messages.sent_at < goal_events.event_at
            and goal_events.event_at <= {{ dbt.dateadd('day', 'campaigns.conversion_window_days', 'messages.sent_at') }}
    group by messages.campaign_id, messages.user_id

),

-- conversions within the window after the campaign start, for every qualified user (intent to treat)
qualified_conversions as (

    select
        qualified.campaign_id,
        qualified.user_id,
        qualified.is_control,
        count(goal_events.user_id) > 0 as converted
    from qualified
    inner join campaigns on qualified.campaign_id = campaigns.campaign_id
    left join goal_events
        on
            qualified.campaign_id = goal_events.campaign_id
            and qualified.user_id = goal_events.user_id
            and goal_events.event_at <= {{ dbt.dateadd(
            'day', 'campaigns.conversion_window_days', 'cast(campaigns.start_date as timestamp)') }}
    group by qualified.campaign_id, qualified.user_id, qualified.is_control

),

delivery as (

    select
        messages.campaign_id,
        count(messages.sent_at) as sent,
        count(messages.viewed_at) as viewed,
        count(messages.clicked_at) as clicked,
        count(message_conversions.user_id) as converted,
        coalesce(sum(message_conversions.revenue), 0) as revenue
    from messages
    left join message_conversions
        on
            messages.campaign_id = message_conversions.campaign_id
            and messages.user_id = message_conversions.user_id
    group by messages.campaign_id

),

groups as (

    select
        campaign_id,
        count(*) as qualified_users,
        sum(case when is_control then 0 else 1 end) as target_users,
        sum(case when is_control then 1 else 0 end) as control_users,
        sum(case when not is_control and converted then 1 else 0 end) as target_converted,
        sum(case when is_control and converted then 1 else 0 end) as control_converted
    from qualified_conversions
    group by campaign_id

),

final as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.channel,
        campaigns.start_date,
        groups.qualified_users,
        groups.target_users,
        groups.control_users,
        coalesce(delivery.sent, 0) as sent,
        coalesce(delivery.viewed, 0) as viewed,
        coalesce(delivery.clicked, 0) as clicked,
        case when delivery.viewed > 0 then 1.0 * delivery.clicked / delivery.viewed end as click_through_rate,
        coalesce(delivery.converted, 0) as converted,
        case when delivery.sent > 0 then 1.0 * delivery.converted / delivery.sent end as conversion_rate,
        coalesce(delivery.revenue, 0) as revenue,
        case when delivery.sent > 0 then delivery.revenue / delivery.sent end as revenue_per_recipient,
        case
            when groups.target_users > 0
                then 1.0 * groups.target_converted / groups.target_users
        end as target_conversion_rate,
        case
            when groups.control_users > 0
                then 1.0 * groups.control_converted / groups.control_users
        end as control_conversion_rate,
        case
            when groups.control_converted > 0 and groups.target_users > 0
                then
                    (1.0 * groups.target_converted / groups.target_users)
                    / (1.0 * groups.control_converted / groups.control_users) - 1
        end as conversion_lift,
        case
            when campaigns.segment_name <> 'all_users'
                then 'qualification for segment ' || campaigns.segment_name || ' needs segment history'
            when coalesce(groups.control_users, 0) = 0 then 'no control users qualified'
            when groups.control_converted = 0 then 'no control user converted: lift undefined'
        end as lift_note
    from campaigns
    left join delivery on campaigns.campaign_id = delivery.campaign_id
    left join groups on campaigns.campaign_id = groups.campaign_id

)

select * from final
