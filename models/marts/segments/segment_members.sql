-- Every segment's members as of the run's as-of instant, with when their current stint began.
with

members as (

    select * from {{ ref('int_segments__evaluated') }}

),

history as (

    select * from {{ ref('segment_membership_history') }}

),

users as (

    select * from {{ ref('dim_users') }}

),

final as (

    select
        members.segment_name,
        members.user_id,
        history.entered_at as qualified_at,
        members.evaluated_at,
        users.email
    from members
    inner join users on members.user_id = users.user_id
    -- the stint that contains this evaluation (a backfilled day finds its own, not the latest)
    left join history
        on
            members.segment_name = history.segment_name
            and members.user_id = history.user_id
            and members.evaluated_at >= history.entered_at
            and (history.exited_at is null or members.evaluated_at < history.exited_at)

)

select * from final
