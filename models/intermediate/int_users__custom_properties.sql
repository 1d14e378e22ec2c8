-- Every user's custom profile properties (profileData keys other than CleverTap's default fields), the
-- latest value of each key by update time, as one JSON object.
--
-- Incremental by user, as int_users__latest_profile: a run recomputes the users whose profile records are
-- new, newly visible or may have moved (macros/incremental_profile_users.sql) and replaces their rows by
-- user_id; a touched user left with no custom property gets a tombstone (custom_properties null), which the
-- post-hook deletes.
-- The incremental filter reads these too (macros/incremental_scope.sql):
-- depends_on: {{ ref('stg_clevertap__events') }}
-- depends_on: {{ ref('int_identity__device_switches') }}
-- depends_on: {{ ref('int_identity__device_owners') }}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='user_id',
    post_hook="delete from {{ this }} where custom_properties is null",
) }}

with

{% if is_incremental() %}
{{ incremental_scope('last_profile_at') }}
{{ incremental_profile_users('last_profile_at') }}
{% endif %}

record_users as (

    select * from {{ ref('int_identity__record_users') }}
    where record_kind = 'profile'
    {% if is_incremental() %}
        and user_id in (select touched_users.user_id from touched_users)
    {% endif %}

),

profiles as (

    select
        record_users.user_id,
        stg.profile_key,
        stg.updated_at,
        stg.properties,
        stg.loaded_at
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

-- the watermark columns: the user's latest profile update and load, custom properties or not
users as (

    select
        user_id,
        max(updated_at) as last_profile_at,
        max(loaded_at) as loaded_at
    from profiles
    group by user_id

),

final as (

    select
        latest.user_id,
        {{ json_object_agg('latest.property', 'latest.value') }} as custom_properties,
        users.last_profile_at,
        users.loaded_at
    from latest
    inner join users on latest.user_id = users.user_id
    where latest.recency = 1
    group by latest.user_id, users.last_profile_at, users.loaded_at

)

select * from final
{% if is_incremental() %}
    union all
    -- tombstones: touched users left with no custom property (see the top)
    select
        touched_users.user_id,
        null as custom_properties,
        null as last_profile_at,
        null as loaded_at
    from touched_users
    where touched_users.user_id not in (select final.user_id from final)
{% endif %}
