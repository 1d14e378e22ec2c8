-- RFM scores of every customer with an order in the window (var rekindle_rfm_window_days), as of "now".
-- Scores are quintiles 1-5 by percent rank, so tied customers share a score (most customers have one
-- order; they all get F = 1 rather than being split at random across quintiles). Higher is better:
-- the most recent, most frequent, highest-spending customers score 5. The named segment is the
-- standard region of the R x F grid (Champions ... Lost; see the YAML).
with

as_of as (

    select {{ rekindle_as_of() }} as evaluated_at

),

orders as (

    select fct_orders.*
    from {{ ref('fct_orders') }} as fct_orders
    cross join as_of
    where
        fct_orders.ordered_at <= as_of.evaluated_at
        and fct_orders.ordered_at > {{ dbt.dateadd('day', -var('rekindle_rfm_window_days'), 'as_of.evaluated_at') }}

),

customers as (

    select
        orders.user_id,
        {{ dbt.datediff('max(orders.ordered_at)', 'max(as_of.evaluated_at)', 'day') }}             as recency_days,
        count(*) as frequency,
        sum(orders.amount) as monetary
    from orders
    cross join as_of
    group by orders.user_id

),

scored as (

    select
        *,
        least(5, 1 + floor(5 * percent_rank() over (order by recency_days desc))) as r_score,
        least(5, 1 + floor(5 * percent_rank() over (order by frequency))) as f_score,
        least(5, 1 + floor(5 * percent_rank() over (order by monetary))) as m_score
    from customers

),

final as (

    select
        scored.user_id,
        scored.recency_days,
        scored.frequency,
        scored.monetary,
        cast(scored.r_score as {{ dbt.type_int() }}) as r_score,
        cast(scored.f_score as {{ dbt.type_int() }}) as f_score,
        cast(scored.m_score as {{ dbt.type_int() }}) as m_score,
        case
            when scored.r_score = 5 and scored.f_score >= 4 then 'Champions'
            when scored.r_score >= 3 and scored.f_score >= 4 then 'Loyal'
            when scored.r_score >= 4 and scored.f_score >= 2 then 'Potential Loyalist'
            when scored.r_score = 5 then 'New Customers'
            when scored.r_score = 4 then 'Promising'
            when scored.r_score = 3 and scored.f_score = 3 then 'Need Attention'
            when scored.r_score = 3 then 'About To Sleep'
            when scored.f_score = 5 then 'Can''t Lose Them'
            when scored.f_score >= 3 then 'At Risk'
            when scored.r_score = 1 and scored.f_score = 1 then 'Lost'
            else 'Hibernating'
        end as rfm_segment,
        as_of.evaluated_at
    from scored
    cross join as_of

)

select * from final
