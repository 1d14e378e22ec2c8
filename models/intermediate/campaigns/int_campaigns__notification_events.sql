-- CleverTap's campaign traffic: every `Notification Sent|Viewed|Clicked` event of fct_events that names a
-- campaign, with the user it belongs to. A narrow copy that int_campaigns__messages reads a campaign and
-- user's whole history from: in fct_events those events are spread over every row group, and reading them
-- there cost about 0.3 s of CPU per read at 10 million events.
--
-- Incremental by event_key. A staged event never changes (the first delivery of a key wins), so an event
-- here changes only when it arrives (new load), becomes visible (the as-of instant moved past it), leaves
-- (a rerun of an earlier day: the post-hook deletes what is after the as-of instant) or moves to another
-- user. Only an event without an identity can move (an event with one belongs to that identity:
-- int_identity__record_users), so every such notification event is read again on each run instead of
-- looking for the devices whose identity history changed, which would scan every event's device. Each
-- case is a branch of its own so that DuckDB skips row groups by their min/max (incremental_constant).
-- tests/test_incremental.py holds it equal to a full refresh.
-- rekindle_as_of() reads the latest event when no as-of instant is given (dbt docs, ad-hoc runs):
-- depends_on: {{ ref('stg_clevertap__events') }}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='event_key',
    post_hook="{{ delete_after_as_of('event_at') }}",
) }}
{%- if is_incremental() %}
    {%- set constants = incremental_watermark('event_at') %}
{%- endif %}

{%- set branches = [
    'events.loaded_at > ' ~ constants.loaded_since,
    'events.event_at > ' ~ constants.record_since,
    "events.resolved_by <> 'identity'",
] if is_incremental() else ['true'] %}

-- every notification event; in an incremental run those loaded since the watermark, those made visible since
-- and those without an identity, each a query of its own so that DuckDB skips row groups by their min/max
-- (incremental_constant), an event in two of them one row
with

final as (

    {%- for branch in branches %}
        select
            events.event_key,
            events.campaign_id,
            events.user_id,
            events.device_id,
            events.resolved_by,
            events.event_name,
            events.event_at,
            events.loaded_at
        from {{ ref('fct_events') }} as events
        where
            events.event_name in ('Notification Sent', 'Notification Viewed', 'Notification Clicked')
            and events.campaign_id is not null
            and {{ branch }}
        {{ 'union' if not loop.last }}
    {%- endfor %}

)

select * from final
