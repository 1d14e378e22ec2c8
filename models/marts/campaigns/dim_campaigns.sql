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
        end_date
    from campaigns

)

select * from final
