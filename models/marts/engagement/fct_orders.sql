-- One row per order (a Charged event). An order re-sent with a new eventId but the same Charged ID is
-- one order: the first occurrence by event time wins.
with

charged as (

    select * from {{ ref('int_events__resolved') }}
    where event_name = 'Charged'

),

numbered as (

    select
        *,
        coalesce(charged_id, event_key) as order_id,
        row_number() over (
            partition by coalesce(charged_id, event_key) order by event_at, event_key
        ) as occurrence
    from charged

),

final as (

    select
        order_id,
        event_key,
        user_id,
        event_at as ordered_at,
        coalesce(amount, 0) as amount,
        {{ json_array_length('properties', "'Items'") }} as item_count,
        cast({{ json_text('properties', "'Quantity'") }} as {{ dbt.type_int() }}) as quantity,
        {{ json_text('properties', "'Payment mode'") }} as payment_mode
    from numbered
    where occurrence = 1

)

select * from final
