-- One row per campaign, with the instants it runs between and the attribution windows it is measured
-- with (the campaign's own conversion_window_days, else var rekindle_attribution_window_hours per channel).
with

campaigns as (

    select * from {{ ref('stg_rekindle__campaigns') }}

),

final as (

    select
        campaign_id,
        campaign_name,
        channel,
        segment_name,
        goal_event,
        goal_filter_property,
        goal_filter_op,
        goal_filter_value,
        conversion_window_days,
        control_group_pct,
        start_date,
        end_date,
        cast(start_date as timestamp) as starts_at,
        -- end_date is a whole day: the campaign runs until the next midnight (UTC)
        {{ dbt.dateadd('day', 1, 'cast(end_date as timestamp)') }} as ends_at,
        {{ attribution_window_hours('campaigns', 'click') }} as click_window_hours,
        {{ attribution_window_hours('campaigns', 'influence') }} as influence_window_hours
    from campaigns

)

select * from final
