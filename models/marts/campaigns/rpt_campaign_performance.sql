-- One row per campaign (a campaign has one channel): CleverTap's campaign stats from the stored models.
-- Users are counted once per step: qualified (campaign_exposures), sent, delivered, viewed, clicked
-- (fct_campaign_messages), converted and influenced (fct_campaign_attribution: a user with a click-through
-- conversion is converted; a user with only view-through conversions is influenced). Revenue is the goal
-- revenue credited to the campaign by the default model, last touch. The target/control columns come from
-- rpt_campaign_lift, which has the intervals and the p-value.
with

campaigns as (

    select * from {{ ref('dim_campaigns') }}

),

messages as (

    select * from {{ ref('fct_campaign_messages') }}

),

attribution as (

    select * from {{ ref('fct_campaign_attribution') }}

),

lift as (

    select * from {{ ref('rpt_campaign_lift') }}

),

delivery as (

    select
        campaign_id,
        count(distinct case when sent_at is not null then user_id end) as sent,
        count(distinct case when delivered_at is not null then user_id end) as delivered,
        count(distinct case when send_status = 'failed' then user_id end) as failed,
        count(distinct case when viewed_at is not null then user_id end) as viewed,
        count(distinct case when clicked_at is not null then user_id end) as clicked
    from messages
    group by campaign_id

),

converters as (

    select
        campaign_id,
        user_id,
        max(case when attribution_kind = 'converted' then 1 else 0 end) as has_click_through
    from attribution
    group by campaign_id, user_id

),

conversions as (

    select
        converters.campaign_id,
        sum(converters.has_click_through) as converted,
        sum(1 - converters.has_click_through) as influenced
    from converters
    group by converters.campaign_id

),

revenue as (

    select
        campaign_id,
        sum(revenue * cast(credit_last_touch as {{ dbt.type_numeric() }})) as revenue
    from attribution
    group by campaign_id

),

final as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.channel,
        campaigns.start_date,
        campaigns.end_date,
        lift.qualified_users,
        lift.target_users,
        lift.control_users,
        lift.global_control_users,
        coalesce(delivery.sent, 0) as sent,
        coalesce(delivery.delivered, 0) as delivered,
        coalesce(delivery.failed, 0) as failed,
        coalesce(delivery.viewed, 0) as viewed,
        coalesce(delivery.clicked, 0) as clicked,
        case
            when delivery.viewed > 0 then cast(delivery.clicked as double precision) / delivery.viewed
        end as click_through_rate,
        coalesce(conversions.converted, 0) as converted,
        coalesce(conversions.influenced, 0) as influenced,
        case
            when delivery.sent > 0
                then
                    cast(coalesce(conversions.converted + conversions.influenced, 0) as double precision)
                    / delivery.sent
        end as conversion_rate,
        coalesce(revenue.revenue, 0) as revenue,
        case when delivery.sent > 0 then coalesce(revenue.revenue, 0) / delivery.sent end as revenue_per_recipient,
        lift.target_conversion_rate,
        lift.control_conversion_rate,
        lift.conversion_lift,
        lift.p_value,
        lift.lift_note
    from campaigns
    left join delivery on campaigns.campaign_id = delivery.campaign_id
    left join conversions on campaigns.campaign_id = conversions.campaign_id
    left join revenue on campaigns.campaign_id = revenue.campaign_id
    left join lift on campaigns.campaign_id = lift.campaign_id

)

select * from final
