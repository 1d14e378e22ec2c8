-- Did the campaign work? One row per campaign: target against campaign-control users among those who
-- qualified (intent to treat: every target user counts, messaged or not, so consent gaps dilute the lift
-- instead of biasing it). A user converted when they did the campaign's goal event within
-- measurement_window_hours after qualifying; revenue per user sums those goal events.
--   conversion rate difference: unpooled Wald 95% interval, p_t - p_c +- z * sqrt(p_t q_t / n_t + p_c q_c / n_c);
--   two-sided p-value: the pooled two-proportion z test (equal to the chi-squared test without correction);
--   relative lift (CleverTap's boost): p_t / p_c - 1, 95% interval by Katz's log method,
--     exp(ln(p_t / p_c) +- z * sqrt(1/x_t - 1/n_t + 1/x_c - 1/n_c)) - 1;
--   revenue per user difference: Welch's 95% interval, t quantile at the Welch-Satterthwaite degrees of freedom.
-- No comparison (and lift_note says why) when a group has fewer users than var rekindle_min_control_users:
-- the normal approximations behind every interval need numbers. The system control group is counted but
-- compared with nobody here: it measures all campaigns together.
{%- set z = 1.959963984540054 %}
{%- set min_users = var('rekindle_min_control_users', 30) %}
with

campaigns as (

    select
        *,
        greatest(click_window_hours, influence_window_hours) as measurement_window_hours
    from {{ ref('dim_campaigns') }}

),

exposures as (

    select * from {{ ref('campaign_exposures') }}

),

goal_events as (

    select * from {{ ref('int_campaigns__goal_events') }}

),

user_outcomes as (

    select
        exposures.campaign_id,
        exposures.user_id,
        exposures.assignment,
        count(goal_events.event_key) > 0 as converted,
        cast(coalesce(sum(goal_events.revenue), 0) as double precision) as revenue
    from exposures
    inner join campaigns on exposures.campaign_id = campaigns.campaign_id
    left join goal_events
        on
            exposures.campaign_id = goal_events.campaign_id
            and exposures.user_id = goal_events.user_id
            and exposures.qualified_at <= goal_events.converted_at
            and goal_events.converted_at <= {{ dbt.dateadd(
                'hour', 'campaigns.measurement_window_hours', 'exposures.qualified_at') }}
    group by exposures.campaign_id, exposures.user_id, exposures.assignment

),

groups as (

    select
        campaign_id,
        count(*) as qualified_users,
        sum(case when assignment = 'global_control' then 1 else 0 end) as global_control_users,
        sum(case when assignment = 'target' then 1 else 0 end) as target_users,
        sum(case when assignment = 'campaign_control' then 1 else 0 end) as control_users,
        sum(case when assignment = 'target' and converted then 1 else 0 end) as target_converted,
        sum(case when assignment = 'campaign_control' and converted then 1 else 0 end) as control_converted,
        avg(case when assignment = 'target' then revenue end) as target_revenue_per_user,
        avg(case when assignment = 'campaign_control' then revenue end) as control_revenue_per_user,
        var_samp(case when assignment = 'target' then revenue end) as target_revenue_variance,
        var_samp(case when assignment = 'campaign_control' then revenue end) as control_revenue_variance
    from user_outcomes
    group by campaign_id

),

counts as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.channel,
        campaigns.control_group_pct,
        campaigns.measurement_window_hours,
        coalesce(groups.qualified_users, 0) as qualified_users,
        coalesce(groups.global_control_users, 0) as global_control_users,
        coalesce(groups.target_users, 0) as target_users,
        coalesce(groups.control_users, 0) as control_users,
        coalesce(groups.target_converted, 0) as target_converted,
        coalesce(groups.control_converted, 0) as control_converted,
        groups.target_revenue_per_user,
        groups.control_revenue_per_user,
        groups.target_revenue_variance,
        groups.control_revenue_variance,
        cast(coalesce(groups.target_users, 0) as double precision) as n_t,
        cast(coalesce(groups.control_users, 0) as double precision) as n_c,
        cast(coalesce(groups.target_converted, 0) as double precision) as x_t,
        cast(coalesce(groups.control_converted, 0) as double precision) as x_c
    from campaigns
    left join groups on campaigns.campaign_id = groups.campaign_id

),

notes as (

    select
        *,
        case
            when control_users = 0 and control_group_pct = 0 then 'no control group: control_group_pct is 0'
            when control_users = 0 then 'no control user qualified'
            when control_users < {{ min_users }}
                then
                    'control group too small: ' || cast(control_users as {{ dbt.type_string() }})
                    || ' qualified users, fewer than {{ min_users }} (var rekindle_min_control_users)'
            when target_users < {{ min_users }}
                then
                    'target group too small: ' || cast(target_users as {{ dbt.type_string() }})
                    || ' qualified users, fewer than {{ min_users }} (var rekindle_min_control_users)'
            when target_converted + control_converted = 0 then 'nobody converted in either group: nothing to test'
            when control_converted = 0 then 'no control user converted: relative lift undefined'
            when target_converted = 0 then 'no target user converted: no interval for the relative lift'
        end as lift_note,
        control_users >= {{ min_users }} and target_users >= {{ min_users }}
        and target_converted + control_converted > 0 as is_comparable
    from counts

),

rates as (

    select
        *,
        case when n_t > 0 then x_t / n_t end as p_t,
        case when n_c > 0 then x_c / n_c end as p_c,
        (x_t + x_c) / nullif(n_t + n_c, 0) as p_pooled,
        target_revenue_variance / nullif(n_t, 0) as revenue_variance_of_mean_t,
        control_revenue_variance / nullif(n_c, 0) as revenue_variance_of_mean_c
    from notes

),

statistics as (

    select
        *,
        case when is_comparable then p_t - p_c end as difference,
        case when is_comparable then sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c) end as wald_se,
        case
            when is_comparable and p_pooled < 1
                then (p_t - p_c) / sqrt(p_pooled * (1 - p_pooled) * (1 / n_t + 1 / n_c))
        end as z_statistic,
        case when is_comparable and x_c > 0 then p_t / p_c - 1 end as relative_lift,
        case
            when is_comparable and x_t > 0 and x_c > 0
                then sqrt(1 / x_t - 1 / n_t + 1 / x_c - 1 / n_c)
        end as log_ratio_se,
        case
            when is_comparable and revenue_variance_of_mean_t + revenue_variance_of_mean_c > 0
                then sqrt(revenue_variance_of_mean_t + revenue_variance_of_mean_c)
        end as revenue_se,
        case
            when is_comparable and revenue_variance_of_mean_t + revenue_variance_of_mean_c > 0
                then
                    (revenue_variance_of_mean_t + revenue_variance_of_mean_c)
                    * (revenue_variance_of_mean_t + revenue_variance_of_mean_c)
                    / (
                        revenue_variance_of_mean_t * revenue_variance_of_mean_t / (n_t - 1)
                        + revenue_variance_of_mean_c * revenue_variance_of_mean_c / (n_c - 1)
                    )
        end as welch_df
    from rates

),

final as (

    select
        campaign_id,
        campaign_name,
        channel,
        measurement_window_hours,
        qualified_users,
        global_control_users,
        target_users,
        control_users,
        target_converted,
        control_converted,
        p_t as target_conversion_rate,
        p_c as control_conversion_rate,
        difference as conversion_rate_difference,
        difference - {{ z }} * wald_se as conversion_rate_difference_ci_low,
        difference + {{ z }} * wald_se as conversion_rate_difference_ci_high,
        relative_lift as conversion_lift,
        case when log_ratio_se is not null then exp(ln(p_t / p_c) - {{ z }} * log_ratio_se) - 1 end
            as conversion_lift_ci_low,
        case when log_ratio_se is not null then exp(ln(p_t / p_c) + {{ z }} * log_ratio_se) - 1 end
            as conversion_lift_ci_high,
        z_statistic,
        {{ normal_two_sided_p_value('z_statistic') }} as p_value,
        case when z_statistic is not null then {{ normal_two_sided_p_value('z_statistic') }} < 0.05 end
            as is_significant,
        target_revenue_per_user,
        control_revenue_per_user,
        case when is_comparable then target_revenue_per_user - control_revenue_per_user end
            as revenue_per_user_difference,
        target_revenue_per_user - control_revenue_per_user - {{ t_quantile_975('welch_df') }} * revenue_se
            as revenue_per_user_difference_ci_low,
        target_revenue_per_user - control_revenue_per_user + {{ t_quantile_975('welch_df') }} * revenue_se
            as revenue_per_user_difference_ci_high,
        case
            when is_comparable and control_revenue_per_user > 0
                then target_revenue_per_user / control_revenue_per_user - 1
        end as revenue_lift,
        lift_note
    from statistics

)

select * from final
