-- Every user's lifecycle stage as of "now", from when they were first and last seen and from the
-- silence before their latest session. Thresholds are variables (dbt_project.yml):
--   seen within active_days:  new (first seen within new_days), resurrected (back after a silence of at
--                             least churned_days), else active
--   seen within at_risk_days: at_risk;   within churned_days: dormant;   longer ago: churned
--
-- A view, unlike the other marts: every row changes with the as-of instant, so a table would be rewritten in
-- full on every run (about 0.4 s of an incremental build at 10 million events, mostly writing 320k rows) for
-- a few date differences over int_users__session_activity that dim_users, its one reader, computes as fast.
{{ config(materialized='view') }}

with

as_of as (

    select {{ rekindle_as_of() }} as evaluated_at

),

users as (

    select * from {{ ref('int_users__session_activity') }}

),

measured as (

    select
        users.*,
        as_of.evaluated_at,
        {{ dbt.datediff('users.first_seen_at', 'as_of.evaluated_at', 'day') }} as days_since_first_seen,
        {{ dbt.datediff('users.last_seen_at', 'as_of.evaluated_at', 'day') }} as days_since_last_seen,
        {{ dbt.datediff('users.silence_started_at', 'users.latest_session_at', 'day') }} as days_of_silence_before_return
    from users
    cross join as_of

),

final as (

    select
        user_id,
        case
            when
                days_since_last_seen <= {{ var('rekindle_lifecycle_active_days') }}
                and days_since_first_seen <= {{ var('rekindle_lifecycle_new_days') }}
                then 'new'
            when
                days_since_last_seen <= {{ var('rekindle_lifecycle_active_days') }}
                and days_of_silence_before_return >= {{ var('rekindle_lifecycle_churned_days') }}
                then 'resurrected'
            when days_since_last_seen <= {{ var('rekindle_lifecycle_active_days') }} then 'active'
            when days_since_last_seen <= {{ var('rekindle_lifecycle_at_risk_days') }} then 'at_risk'
            when days_since_last_seen <= {{ var('rekindle_lifecycle_churned_days') }} then 'dormant'
            else 'churned'
        end as lifecycle_stage,
        first_seen_at,
        last_seen_at,
        days_since_first_seen,
        days_since_last_seen,
        days_of_silence_before_return,
        evaluated_at
    from measured

)

select * from final
