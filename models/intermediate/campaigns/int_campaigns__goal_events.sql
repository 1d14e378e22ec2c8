-- Every event that is a goal of some campaign: the goal event, passing the campaign's optional property
-- filter, from the campaign's start until the end of the last window a user qualified or messaged while
-- it ran could still convert in (ends_at plus the longer of its two windows). One row per campaign and
-- event: an event can be the goal of several campaigns. The whole range is re-read on every build, so an
-- event loaded late (old event time, new load) is attributed like one that came on time.
-- A table, not a view: the attribution and the lift both read it, and each read of the view scanned
-- fct_events again (at 10 million events about 0.4-0.5 s of CPU each, against 0.1 s for the table).
{{ config(materialized='table') }}

with

campaigns as (

    select * from {{ ref('dim_campaigns') }}

),

events as (

    select * from {{ ref('fct_events') }}

),

final as (

    select
        campaigns.campaign_id,
        events.event_key,
        events.user_id,
        events.event_at as converted_at,
        cast(coalesce(events.amount, 0) as {{ dbt.type_numeric() }}) as revenue,
        events.loaded_at
    from events
    inner join campaigns
        on
            events.event_name = campaigns.goal_event
            and events.event_at >= campaigns.starts_at
            and events.event_at <= {{ dbt.dateadd(
                'hour', 'greatest(campaigns.click_window_hours, campaigns.influence_window_hours)', 'campaigns.ends_at'
            ) }}
            and {{ matches_goal_filter('events.properties', 'campaigns') }}

)

select * from final
