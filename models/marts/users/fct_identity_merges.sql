-- The identity audit: every anonymous device history that was merged into a known user, when the
-- merge became possible (the identity's first login on the device) and why, with what it moved.
with

record_users as (

    select * from {{ ref('int_identity__record_users') }}
    where resolved_by in ('device_logged_in', 'device_adopted_before_login')

),

logins as (

    select
        device_id,
        identity,
        min(switched_at) as first_login_at
    from {{ ref('int_identity__device_switches') }}
    group by device_id, identity

),

merged as (

    select
        device_id,
        user_id,
        count(*) as merged_records,
        cast(sum(case when resolved_by = 'device_adopted_before_login' then 1 else 0 end) as {{ dbt.type_bigint() }})
            as adopted_before_login,
        cast(sum(case when resolved_by = 'device_logged_in' then 1 else 0 end) as {{ dbt.type_bigint() }})
            as while_logged_in,
        min(record_at) as first_merged_record_at,
        max(record_at) as last_merged_record_at
    from record_users
    group by device_id, user_id

),

final as (

    select
        merged.device_id,
        merged.user_id,
        logins.first_login_at as merged_at,
        case
            when merged.adopted_before_login > 0
                then 'anonymous history adopted at the first login on the device'
            else 'anonymous activity while the identity was logged in on the device'
        end as reason,
        merged.merged_records,
        merged.adopted_before_login,
        merged.while_logged_in,
        merged.first_merged_record_at,
        merged.last_merged_record_at
    from merged
    inner join logins on merged.device_id = logins.device_id and merged.user_id = logins.identity

)

select * from final
