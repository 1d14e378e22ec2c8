with

events as (

    select * from {{ ref('int_events__resolved') }}

),

final as (

    select
        event_key,
        user_id,
        event_name,
        event_at,
        identity,
        device_id,
        resolved_by,
        amount,
        charged_id,
        campaign_id,
        campaign_type,
        properties
    from events

)

select * from final
