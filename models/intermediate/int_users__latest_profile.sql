-- One row per user: the latest non-null value of every profile field by update time (not by load
-- order), so an older update arriving late never overrides a newer opt-out.
with

profiles as (

    select * from {{ ref('stg_clevertap__profiles') }}

),

record_users as (

    select * from {{ ref('int_identity__record_users') }}
    where record_kind = 'profile'

),

resolved as (

    select
        record_users.user_id,
        profiles.*
    from profiles
    inner join record_users on profiles.profile_key = record_users.record_key

),

latest as (

    select distinct
        user_id,
        {%- for field in ['name', 'email', 'phone', 'gender', 'date_of_birth', 'city', 'country',
                          'msg_email', 'msg_sms', 'msg_push', 'msg_whatsapp'] %}
            {{ latest_non_null(field, 'user_id', 'updated_at desc, profile_key desc') }} as {{ field }},
        {%- endfor %}
        min(updated_at) over (partition by user_id) as first_profile_at,
        max(updated_at) over (partition by user_id) as last_profile_at
    from resolved

)

select * from latest
