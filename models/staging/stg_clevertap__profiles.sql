-- Incremental: a run reads only what was loaded since the table's watermark and appends the keys it
-- has not seen. A key's first delivery is already here by then, so this equals a full rebuild, and
-- the identity models above read a table instead of re-deduplicating all of raw.profiles per query.
{{ config(materialized='incremental', incremental_strategy='append') }}

with

source as (

    select * from {{ source('clevertap', 'profiles') }}
    {% if is_incremental() %}
        where loaded_at > {{ incremental_loaded_since() }}
    {% endif %}

),

deduplicated as (

    {{ first_delivery('source', 'profile_key') }}

),

renamed as (

    select
        profile_key,
        {{ clean_identifier('identity') }} as identity,
        {{ clean_identifier('object_id') }} as device_id,
        updated_ts as updated_at,
        nullif(trim({{ json_text('profile_data', "'Name'") }}), '') as name,
        nullif(lower(trim({{ json_text('profile_data', "'Email'") }})), '') as email,
        {{ e164_phone(json_text('profile_data', "'Phone'")) }} as phone,
        upper(nullif(trim({{ json_text('profile_data', "'Gender'") }}), '')) as gender,
        nullif(trim({{ json_text('profile_data', "'DOB'") }}), '') as date_of_birth,
        nullif(trim({{ json_text('profile_data', "'City'") }}), '') as city,
        nullif(trim({{ json_text('profile_data', "'Country'") }}), '') as country,
        {{ json_bool('profile_data', "'MSG-email'") }} as msg_email,
        {{ json_bool('profile_data', "'MSG-sms'") }} as msg_sms,
        {{ json_bool('profile_data', "'MSG-push'") }} as msg_push,
        {{ json_bool('profile_data', "'MSG-whatsapp'") }} as msg_whatsapp,
        profile_data as properties,
        loaded_at

    from deduplicated

)

select * from renamed
{% if is_incremental() %}
    where not exists (select 1 from {{ this }} as seen where seen.profile_key = renamed.profile_key)
{% endif %}
