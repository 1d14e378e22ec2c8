-- Who qualified for each campaign while it ran, and which group each of them is in. A user qualifies when
-- they were a member of the campaign's segment at some moment between its start and its end (or, for
-- `all_users`, identified by then); qualified_at is the first such moment. The groups are hash buckets of the
-- user id, so a user who qualifies later lands in the group the same formula gives today, and nothing random
-- is stored: the system control group first (macro is_global_control), then the campaign's own control
-- group (hash_bucket(campaign_id || ':' || user_id) < control_group_pct), everybody else is target.
with

campaigns as (

    select
        *,
        -- a campaign still running is evaluated up to the run's as-of instant
        case
            when ends_at < {{ rekindle_as_of() }} then ends_at else {{ rekindle_as_of() }}
        end as qualifying_until
    from {{ ref('dim_campaigns') }}

),

memberships as (

    select * from {{ ref('segment_membership_history') }}

),

users as (

    select * from {{ ref('dim_users') }}

),

segment_qualified as (

    select
        campaigns.campaign_id,
        memberships.user_id,
        min(
            case
                when memberships.entered_at > campaigns.starts_at then memberships.entered_at
                else campaigns.starts_at
            end
        ) as qualified_at
    from campaigns
    inner join memberships
        on
            campaigns.segment_name = memberships.segment_name
            -- the stint overlaps [starts_at, qualifying_until)
            and campaigns.qualifying_until > memberships.entered_at
            and (memberships.exited_at is null or campaigns.starts_at < memberships.exited_at)
    where
        campaigns.segment_name <> 'all_users'
        and campaigns.starts_at < campaigns.qualifying_until
    group by campaigns.campaign_id, memberships.user_id

),

all_users_qualified as (

    select
        campaigns.campaign_id,
        users.user_id,
        case
            when users.identified_at > campaigns.starts_at then users.identified_at else campaigns.starts_at
        end as qualified_at
    from campaigns
    inner join users
        on
            users.is_identified
            and campaigns.qualifying_until > users.identified_at
    where
        campaigns.segment_name = 'all_users'
        and campaigns.starts_at < campaigns.qualifying_until

),

qualified as (

    select * from segment_qualified
    union all
    select * from all_users_qualified

),

buckets as (

    select
        qualified.campaign_id,
        qualified.user_id,
        qualified.qualified_at,
        campaigns.control_group_pct,
        {{ hash_bucket("qualified.campaign_id || ':' || qualified.user_id") }} as control_bucket,
        {{ hash_bucket("'global:' || qualified.user_id") }} as global_control_bucket
    from qualified
    inner join campaigns on qualified.campaign_id = campaigns.campaign_id

),

final as (

    select
        campaign_id,
        user_id,
        qualified_at,
        -- `assignment` is a keyword to sqlfluff, and the column name a contract with the senders
        case
            when global_control_bucket < {{ global_control_pct() }} then 'global_control'
            when control_bucket < control_group_pct then 'campaign_control'
            else 'target'
        end as assignment,  -- noqa: RF04
        control_bucket,
        global_control_bucket
    from buckets

)

select * from final
