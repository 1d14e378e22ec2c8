-- Every user's custom profile properties (profileData keys other than CleverTap's default fields), the
-- latest value of each key by update time, as one JSON object.
with

record_users as (

    select * from {{ ref('int_identity__record_users') }}
    where record_kind = 'profile'

),

profiles as (

    select
        record_users.user_id,
        stg.profile_key,
        stg.updated_at,
        stg.properties
    from {{ ref('stg_clevertap__profiles') }} as stg
    inner join record_users on stg.profile_key = record_users.record_key

),

entries as (

    {{ json_entries('profiles', 'properties', ['user_id', 'profile_key', 'updated_at']) }}

),

latest as (

    select
        user_id,
        property,
        value,
        row_number() over (
            partition by user_id, property order by updated_at desc, profile_key desc
        ) as recency
    from entries
    where
        property not in (
            'Name', 'Identity', 'Email', 'Phone', 'Gender', 'DOB', 'City', 'Country',
            'MSG-email', 'MSG-sms', 'MSG-push', 'MSG-whatsapp'
        )

),

final as (

    select
        user_id,
        {{ json_object_agg('property', 'value') }} as custom_properties
    from latest
    where recency = 1
    group by user_id

)

select * from final
