-- Revenue per UTC calendar month from fct_orders (one row per order, an order re-sent under another eventId
-- counted once), every month from the first order's to the as-of instant's, months without orders as zero.
-- Money stays numeric(28,6): decimals sum exactly, so the figures equal a sum over the source file.

with

as_of as (

    select {{ rekindle_as_of() }} as evaluated_at

),

orders as (

    select
        user_id,
        amount,
        {{ report_period_start('ordered_at', 'month') }} as revenue_month
    from {{ ref('fct_orders') }}

),

first_orders as (

    select
        user_id,
        min(revenue_month) as first_month
    from orders
    group by user_id

),

monthly as (

    select
        revenue_month,
        sum(amount) as revenue,
        count(*) as orders,
        count(distinct user_id) as active_customers
    from orders
    group by revenue_month

),

new_customers as (

    select
        first_month as revenue_month,
        count(*) as new_customers
    from first_orders
    group by first_month

),

months as (

    {{ report_spine('(select min(revenue_month) from orders)', '(select evaluated_at from as_of)', 'month') }}

),

final as (

    select
        months.period_start as revenue_month,
        cast(coalesce(monthly.revenue, 0) as {{ dbt.type_numeric() }}) as revenue,
        cast(coalesce(monthly.orders, 0) as {{ dbt.type_bigint() }}) as orders,
        cast(coalesce(monthly.active_customers, 0) as {{ dbt.type_bigint() }}) as active_customers,
        cast(coalesce(new_customers.new_customers, 0) as {{ dbt.type_bigint() }}) as new_customers,
        cast(monthly.revenue / nullif(monthly.active_customers, 0) as {{ dbt.type_numeric() }}) as arppu,
        cast(monthly.revenue / nullif(monthly.orders, 0) as {{ dbt.type_numeric() }}) as average_order_value,
        {{ dbt.dateadd('month', 1, 'months.period_start') }} > as_of.evaluated_at as is_partial_month,
        as_of.evaluated_at
    from months
    cross join as_of
    left join monthly on months.period_start = monthly.revenue_month
    left join new_customers on months.period_start = new_customers.revenue_month
    where cast(months.period_start as timestamp) < as_of.evaluated_at

)

select * from final
