-- For every goal conversion, the campaigns it is credited to (CleverTap's two kinds) and each campaign's
-- credit under three models. A message touches a conversion of its campaign's goal when
--   converted:  it was clicked before the conversion, and the conversion came within the click window;
--   influenced: it was delivered or viewed before the conversion, not clicked before it, and the conversion
--               came within the influence window of the latest of those (a click after the conversion
--               does not matter; a click before it outside its window forfeits the message).
-- Windows are inclusive at the edge: a conversion exactly click_window_hours after the click counts.
-- Each campaign is represented by its best touch (a click-through over a view-through, then the latest).
-- Credits: last touch (the default report model) and first touch give 1 to one campaign, click-throughs
-- before view-throughs and then by the time of the touch (latest, resp. earliest; campaign_id breaks ties);
-- linear splits 1 evenly. Each kind of credit sums to 1 per conversion. The table is rebuilt from all goal
-- events every run, so a conversion loaded late is credited as if it had come on time.
with

campaigns as (

    select * from {{ ref('dim_campaigns') }}

),

messages as (

    select * from {{ ref('fct_campaign_messages') }}

),

goal_events as (

    select * from {{ ref('int_campaigns__goal_events') }}

),

touches as (

    select
        goal_events.event_key,
        goal_events.campaign_id,
        goal_events.user_id,
        goal_events.converted_at,
        goal_events.revenue,
        goal_events.loaded_at,
        messages.message_id,
        messages.clicked_at,
        -- the latest moment before the conversion at which the message had reached the user
        case
            when messages.viewed_at < goal_events.converted_at then messages.viewed_at
            when messages.delivered_at < goal_events.converted_at then messages.delivered_at
        end as reached_at,
        campaigns.click_window_hours,
        campaigns.influence_window_hours
    from goal_events
    inner join campaigns on goal_events.campaign_id = campaigns.campaign_id
    inner join messages
        on
            goal_events.campaign_id = messages.campaign_id
            and goal_events.user_id = messages.user_id

),

qualifying_touches as (

    select
        event_key,
        campaign_id,
        user_id,
        converted_at,
        revenue,
        loaded_at,
        message_id,
        case when clicked_at < converted_at then 'converted' else 'influenced' end as attribution_kind,
        case when clicked_at < converted_at then clicked_at else reached_at end as touched_at
    from touches
    where
        (
            clicked_at < converted_at
            and converted_at <= {{ dbt.dateadd('hour', 'click_window_hours', 'clicked_at') }}
        )
        or (
            (clicked_at is null or clicked_at >= converted_at)
            and reached_at is not null
            and converted_at <= {{ dbt.dateadd('hour', 'influence_window_hours', 'reached_at') }}
        )

),

best_touch_per_campaign as (

    select
        *,
        row_number() over (
            partition by event_key, campaign_id
            order by case when attribution_kind = 'converted' then 0 else 1 end, touched_at desc, message_id asc
        ) as touch_rank
    from qualifying_touches

),

ranked as (

    select
        *,
        row_number() over (
            partition by event_key
            order by case when attribution_kind = 'converted' then 0 else 1 end, touched_at desc, campaign_id asc
        ) as last_touch_rank,
        row_number() over (
            partition by event_key
            order by case when attribution_kind = 'converted' then 0 else 1 end, touched_at asc, campaign_id asc
        ) as first_touch_rank,
        count(*) over (partition by event_key) as credited_campaigns
    from best_touch_per_campaign
    where touch_rank = 1

),

final as (

    select
        event_key as conversion_event_key,
        campaign_id,
        user_id,
        converted_at,
        loaded_at as conversion_loaded_at,
        revenue,
        attribution_kind,
        message_id,
        touched_at,
        credited_campaigns,
        cast(case when last_touch_rank = 1 then 1 else 0 end as double precision) as credit_last_touch,
        cast(case when first_touch_rank = 1 then 1 else 0 end as double precision) as credit_first_touch,
        cast(1 as double precision) / credited_campaigns as credit_linear
    from ranked

)

select * from final
