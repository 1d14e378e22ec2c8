with

source as (

    select * from {{ source('clevertap', 'events') }}

),

-- The loader drops re-deliveries it finds within its lookback window; one older than that can still
-- land twice, so the first load of every key wins here.
deduplicated as (

    select *
    from (
        select
            *,
            row_number() over (partition by event_key order by loaded_at, source_file, source_line) as delivery
        from source
    ) as numbered
    where delivery = 1

),

renamed as (

    select
        event_key,
        event_id,
        event_name,
        event_ts as event_at,
        {{ clean_identifier('identity') }} as identity,
        {{ clean_identifier('object_id') }} as device_id,
        evt_data as properties,
        case
            when event_name = 'Charged'
                then cast({{ json_text('evt_data', "'Amount'") }} as {{ dbt.type_float() }})
        end as amount,
        case when event_name = 'Charged' then {{ json_text('evt_data', "'Charged ID'") }} end as charged_id,
        {{ json_text('evt_data', "'Campaign id'") }} as campaign_id,
        {{ json_text('evt_data', "'Campaign type'") }} as campaign_type,
        loaded_at

    from deduplicated

)

select * from renamed
