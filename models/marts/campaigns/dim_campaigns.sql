-- One row per campaign, with the instants it runs between and the attribution windows it is measured
-- with (the campaign's own conversion_window_days, else var rekindle_attribution_window_hours per channel).
with

campaigns as (

    select * from {{ ref('stg_rekindle__campaigns') }}

),

final as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.channel,
        campaigns.segment_name,
        campaigns.goal_event,
        campaigns.goal_filter_property,
        campaigns.goal_filter_op,
        campaigns.goal_filter_value,
        campaigns.conversion_window_days,
        campaigns.control_group_pct,
        campaigns.start_date,
        campaigns.end_date,
        cast(campaigns.start_date as timestamp) as starts_at,
        -- end_date is a whole day: the campaign runs until the next midnight (UTC)
        {{ dbt.dateadd('day', 1, 'cast(campaigns.end_date as timestamp)') }} as ends_at,
        {{ attribution_window_hours('campaigns', 'click') }} as click_window_hours,
        {{ attribution_window_hours('campaigns', 'influence') }} as influence_window_hours
    from campaigns

)

select * from final
