-- The walking skeleton's one segment, recent_buyers: bought in the 30 days up to the as-of instant
-- and can receive email. Segments defined in YAML replace this hand-written one (issue #5).
with

as_of as (

    select {{ rekindle_as_of() }} as evaluated_at

),

recent_orders as (

    select
        fct_events.user_id,
        count(*) as orders_in_window
    from {{ ref('fct_events') }} as fct_events
    cross join as_of
    where
        fct_events.event_name = 'Charged'
        and fct_events.event_at > {{ dbt.dateadd('day', -30, 'as_of.evaluated_at') }}
        and fct_events.event_at <= as_of.evaluated_at
    group by fct_events.user_id

),

users as (

    select * from {{ ref('dim_users') }}

),

final as (

    select
        'recent_buyers' as segment_name,
        users.user_id,
        users.email,
        recent_orders.orders_in_window,
        as_of.evaluated_at
    from users
    inner join recent_orders on users.user_id = recent_orders.user_id
    cross join as_of
    where users.can_email

)

select * from final
