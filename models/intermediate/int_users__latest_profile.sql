-- One row per user: the latest non-null value of every profile field by update time (not by load
-- order), so an older update arriving late never overrides a newer opt-out.
--
-- Incremental by user: a run recomputes the users whose profile records are new, newly visible or may
-- have moved to or from them (macros/incremental_profile_users.sql) from all their profile records, and
-- replaces their rows (delete+insert on user_id). A touched user left with no profile record gets a
-- tombstone (first_profile_at null) so that their row goes too; the post-hook deletes the tombstones.
-- The incremental filter reads these too (macros/incremental_scope.sql):
-- depends_on: {{ ref('stg_clevertap__events') }}
-- depends_on: {{ ref('int_identity__device_switches') }}
-- depends_on: {{ ref('int_identity__device_owners') }}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='user_id',
    post_hook="delete from {{ this }} where first_profile_at is null",
) }}

{%- set fields = [
    'name', 'email', 'phone', 'gender', 'date_of_birth', 'city', 'country',
    'msg_email', 'msg_sms', 'msg_push', 'msg_whatsapp',
] %}

with

{% if is_incremental() %}
{{ incremental_scope('last_profile_at') }}
{{ incremental_profile_users('last_profile_at') }}
{% endif %}

profiles as (

    select * from {{ ref('stg_clevertap__profiles') }}

),

record_users as (

    select * from {{ ref('int_identity__record_users') }}
    where record_kind = 'profile'
    {% if is_incremental() %}
        and user_id in (select touched_users.user_id from touched_users)
    {% endif %}

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
        {%- for field in fields %}
            {{ latest_non_null(field, 'user_id', 'updated_at desc, profile_key desc') }} as {{ field }},
        {%- endfor %}
        min(updated_at) over (partition by user_id) as first_profile_at,
        max(updated_at) over (partition by user_id) as last_profile_at,
        max(loaded_at) over (partition by user_id) as loaded_at
    from resolved

)

select * from latest
{% if is_incremental() %}
    union all
    -- tombstones: touched users left with no profile record (see the top)
    select
        touched_users.user_id,
        {%- for field in fields %}
            null as {{ field }},
        {%- endfor %}
        null as first_profile_at,
        null as last_profile_at,
        null as loaded_at
    from touched_users
    where touched_users.user_id not in (select latest.user_id from latest)
{% endif %}
