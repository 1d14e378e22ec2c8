-- Every change of a customer's RFM segment between runs, from the snapshot's versions.
with

versions as (

    select
        user_id,
        rfm_segment,
        dbt_valid_from as changed_at,
        lag(rfm_segment) over (partition by user_id order by dbt_valid_from) as previous_segment
    from {{ ref('rfm_scores_snapshot') }}

),

final as (

    select
        user_id,
        previous_segment as from_segment,
        rfm_segment as to_segment,
        changed_at
    from versions
    where previous_segment is not null and previous_segment <> rfm_segment

)

select * from final
