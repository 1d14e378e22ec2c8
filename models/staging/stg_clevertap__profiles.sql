with

source as (

    select * from {{ source('clevertap', 'profiles') }}

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
