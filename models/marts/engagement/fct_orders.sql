-- One row per order (a Charged event). An order re-sent with a new eventId but the same Charged ID is
-- one order: the first occurrence by event time wins.
--
-- Incremental by order: a run recomputes every order with a Charged event that is new, newly visible
-- or on a device whose identity history changed (its buyer may have changed), from all of that
-- order's occurrences, and replaces it by order_id.
-- The incremental filter reads these too (macros/incremental_scope.sql):
-- depends_on: {{ ref('stg_clevertap__events') }}
-- depends_on: {{ ref('stg_clevertap__profiles') }}
-- depends_on: {{ ref('int_identity__device_switches') }}
-- depends_on: {{ ref('int_identity__record_users') }}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='order_id',
    post_hook="{{ delete_after_as_of('ordered_at') }}",
) }}

with

{% if is_incremental() %}
{{ incremental_scope('ordered_at') }}

touched_orders as (

    select coalesce(events.charged_id, events.event_key) as order_id
    from {{ ref('fct_events') }} as events
    where
        events.event_name = 'Charged'
        and events.event_key in (
            select records.record_key
            from ({{ incremental_resolved_records('record_users.record_key', 'ordered_at', 'event') }}) as records
        )

),
{% endif %}

charged as (

    select
        *,
        coalesce(charged_id, event_key) as order_id
    from {{ ref('fct_events') }}
    where event_name = 'Charged'

),

numbered as (

    select
        *,
        row_number() over (partition by order_id order by event_at, event_key) as occurrence,
        -- the order's row depends on all its occurrences: its watermark is the latest of their loads
        max(loaded_at) over (partition by order_id) as order_loaded_at
    from charged
    {% if is_incremental() %}
        where order_id in (select touched_orders.order_id from touched_orders)
    {% endif %}

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
        {{ json_text('properties', "'Payment mode'") }} as payment_mode,
        order_loaded_at as loaded_at
    from numbered
    where occurrence = 1

)

select * from final
