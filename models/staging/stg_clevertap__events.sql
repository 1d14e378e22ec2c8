-- Incremental: a run reads only what was loaded since the table's watermark and appends the keys it
-- has not seen. A key's first delivery is already here by then, so this equals a full rebuild, and
-- the identity models above read a table instead of re-deduplicating all of raw.events per query.
{{ config(materialized='incremental', incremental_strategy='append') }}

with

source as (

    select * from {{ source('clevertap', 'events') }}
    {% if is_incremental() %}
        where loaded_at > {{ incremental_loaded_since() }}
    {% endif %}

),

deduplicated as (

    {{ first_delivery('source', 'event_key') }}

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
                then cast({{ json_text('evt_data', "'Amount'") }} as {{ dbt.type_numeric() }})
        end as amount,
        case when event_name = 'Charged' then {{ json_text('evt_data', "'Charged ID'") }} end as charged_id,
        {{ json_text('evt_data', "'Campaign id'") }} as campaign_id,
        {{ json_text('evt_data', "'Campaign type'") }} as campaign_type,
        loaded_at

    from deduplicated

)

select * from renamed
{% if is_incremental() %}
    where not exists (select 1 from {{ this }} as seen where seen.event_key = renamed.event_key)
{% endif %}
