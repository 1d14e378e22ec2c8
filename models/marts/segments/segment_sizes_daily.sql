-- Members per segment at every evaluation, zero included, so a chart of a segment's size has a point for
-- every run since the segment was defined. Incremental by evaluation like the membership log.
-- History, not a cache of something recomputable: `--full-refresh` leaves it alone (full_refresh=false),
-- and tests/test_incremental.py, which compares incremental models with a full refresh, skips tag history.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='evaluated_at',
    full_refresh=false,
    tags=['history'],
) }}

with

as_of as (

    select {{ rekindle_as_of() }} as evaluated_at

),

definitions as (

    select * from {{ ref('segment_definitions') }}

),

members as (

    select
        segment_name,
        count(*) as members
    from {{ ref('int_segments__evaluated') }}
    group by segment_name

),

final as (

    select
        definitions.segment_name,
        as_of.evaluated_at,
        cast({{ dbt.date_trunc('day', dbt.dateadd('second', -1, 'as_of.evaluated_at')) }} as date) as evaluated_day,
        coalesce(members.members, 0) as members
    from definitions
    cross join as_of
    left join members on definitions.segment_name = members.segment_name

)

select * from final
