with

source as (

    select * from {{ source('rekindle', 'campaigns') }}

),

renamed as (

    select
        campaign_id,
        campaign_name,
        channel,
        segment as segment_name,
        goal_event,
        {{ json_text('goal_filter', "'property'") }} as goal_filter_property,
        {{ json_text('goal_filter', "'op'") }} as goal_filter_op,
        {{ json_text('goal_filter', "'value'") }} as goal_filter_value,
        conversion_window_days,
        control_group_pct,
        start_date,
        end_date

    from source

)

select * from renamed
