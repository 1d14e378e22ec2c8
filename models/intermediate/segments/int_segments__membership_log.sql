-- Who was a member of which segment at each evaluation (one row per segment, member and as-of instant).
-- Incremental by evaluation: a run replaces the rows of its own as-of instant, so a rerun or a backfill
-- of a past day rewrites that day's membership exactly, and history is rebuilt from these rows.
-- History, not a cache of something recomputable: `--full-refresh` leaves it alone (full_refresh=false),
-- and tests/test_incremental.py, which compares incremental models with a full refresh, skips tag history.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='evaluated_at',
    full_refresh=false,
    tags=['history'],
) }}

select
    segment_name,
    user_id,
    evaluated_at
from {{ ref('int_segments__evaluated') }}
