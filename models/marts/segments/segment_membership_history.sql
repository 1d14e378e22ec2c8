-- Each stint of each user in each segment: from the evaluation at which they entered to the first
-- evaluation of that segment at which they were no longer a member (null while they still are).
-- Evaluations are the segment's own runs (segment_sizes_daily), so a day without a run does not break
-- a stint, and a segment defined later starts its history then.
with

evaluations as (

    select
        segment_name,
        evaluated_at,
        row_number() over (partition by segment_name order by evaluated_at) as evaluation_number
    from {{ ref('segment_sizes_daily') }}

),

memberships as (

    select
        log.segment_name,
        log.user_id,
        log.evaluated_at,
        evaluations.evaluation_number,
        -- consecutive evaluations share a stint number (gaps and islands)
        evaluations.evaluation_number
        - row_number() over (partition by log.segment_name, log.user_id order by log.evaluated_at) as stint
    from {{ ref('int_segments__membership_log') }} as log
    inner join evaluations
        on log.segment_name = evaluations.segment_name and log.evaluated_at = evaluations.evaluated_at

),

stints as (

    select
        segment_name,
        user_id,
        min(evaluated_at) as entered_at,
        max(evaluation_number) as last_evaluation_number
    from memberships
    group by segment_name, user_id, stint

),

final as (

    select
        stints.segment_name,
        stints.user_id,
        stints.entered_at,
        next_evaluation.evaluated_at as exited_at,
        next_evaluation.evaluated_at is null as is_current
    from stints
    left join evaluations as next_evaluation
        on
            stints.segment_name = next_evaluation.segment_name
            and next_evaluation.evaluation_number = stints.last_evaluation_number + 1

)

select * from final
