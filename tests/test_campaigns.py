"""Campaigns: the YAML validator, control groups, and the lift statistics checked against scipy.

One generated landing zone (2,500 users, 7 days) is loaded and built once for the module with
`dbt run --select +rpt_campaign_performance`; the attribution edges are dbt unit tests
(models/marts/campaigns/_campaigns__unit_tests.yml).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import jinja2
import psycopg2
import pytest
from scipy import stats

from loaders.campaigns import CampaignError, parse_campaign_file, validate_entry
from loaders.generate import GLOBAL_CONTROL_PCT, control_bucket, generate, global_control_bucket
from loaders.load import load_landing
from tests.conftest import PROJECT, SMALL_AS_OF, SMALL_END, pg_params, run_dbt

Z_975 = stats.norm.ppf(0.975)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse big enough for the control groups to say something (a few hundred control users each)."""
    tmp = tmp_path_factory.mktemp("campaigns")
    generate(tmp / "landing", users=2500, days=7, seed=11, end=SMALL_END)
    warehouse = tmp / "rekindle.duckdb"
    load_landing(str(tmp / "landing"), warehouse, (datetime(2026, 10, 31), SMALL_AS_OF))
    run_dbt(warehouse, "run", "--select", "+rpt_campaign_performance", tmp=tmp)
    return warehouse


def rows(warehouse: Path, sql: str) -> list[dict]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# ------------------------------------------------------------------------------------------ the validator

ENTRY = {
    "id": "spring_sale",
    "name": "Spring",
    "channel": "email",
    "segment": "recent_buyers",
    "goal_event": "Charged",
    "control_group_pct": 10,
    "start": "2026-10-01",
    "end": "2026-10-03",
}


def test_a_campaign_must_target_a_defined_segment_and_the_error_names_file_entry_and_field(tmp_path: Path) -> None:
    path = tmp_path / "q4.yml"
    path.write_text(
        "campaigns:\n"
        f"  - {json.dumps(ENTRY)}\n"
        f"  - {json.dumps({**ENTRY, 'id': 'typo', 'segment': 'recent_buyer'})}\n"
        f"  - {json.dumps({**ENTRY, 'id': 'everyone', 'segment': 'all_users'})}\n"
    )
    valid, quarantine = parse_campaign_file(path, "campaigns/q4.yml", frozenset({"recent_buyers"}))
    assert [r["campaign_id"] for r in valid] == ["spring_sale", "everyone"]
    (reason,) = quarantine.column("reason").to_pylist()
    assert reason.startswith("invalid_campaign: campaigns/q4.yml, campaign #2 (id typo): field 'segment'")
    assert "'recent_buyer'" in reason and "all_users, recent_buyers" in reason
    # without a list of segments (no project at hand) the name is not checked
    assert len(parse_campaign_file(path, "campaigns/q4.yml")[0]) == 3


def test_the_loader_checks_campaign_segments_against_the_project_segments(tmp_path: Path) -> None:
    (tmp_path / "landing" / "campaigns").mkdir(parents=True)
    (tmp_path / "landing" / "campaigns" / "q4.yml").write_text(
        "campaigns:\n"
        f"  - {json.dumps(ENTRY)}\n"
        f"  - {json.dumps({**ENTRY, 'id': 'ghost', 'segment': 'no_such_segment'})}\n"
    )
    warehouse = tmp_path / "w.duckdb"
    assert load_landing(str(tmp_path / "landing"), warehouse, (datetime(2026, 10, 31), SMALL_AS_OF)).campaigns == 1
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (reason,) = con.execute("select reason from quarantine_events").fetchone()
    assert "campaigns/q4.yml, campaign #2 (id ghost): field 'segment' names no defined segment" in reason


def test_the_conversion_window_is_optional_and_must_be_positive_when_given() -> None:
    assert validate_entry(ENTRY, "f.yml")["conversion_window_days"] is None
    assert validate_entry({**ENTRY, "conversion_window_days": 2}, "f.yml")["conversion_window_days"] == 2
    with pytest.raises(CampaignError, match=r"f.yml \(id spring_sale\): field 'conversion_window_days'"):
        validate_entry({**ENTRY, "conversion_window_days": 0}, "f.yml")


# ------------------------------------------------------------------------------- control groups, exposures


def test_control_groups_are_the_documented_hash_buckets_in_sql_and_python(demo: Path) -> None:
    users = rows(demo, "select user_id, is_global_control from dim_users")
    assert all(u["is_global_control"] == (global_control_bucket(u["user_id"]) < GLOBAL_CONTROL_PCT) for u in users)
    share = sum(u["is_global_control"] for u in users) / len(users)
    assert 0.02 < share < 0.04, share
    exposures = rows(
        demo,
        "select e.*, c.control_group_pct from campaign_exposures e join dim_campaigns c using (campaign_id)",
    )
    for e in exposures:
        expected = (
            "global_control"
            if global_control_bucket(e["user_id"]) < GLOBAL_CONTROL_PCT
            else "campaign_control"
            if control_bucket(e["campaign_id"], e["user_id"]) < e["control_group_pct"]
            else "target"
        )
        assert e["assignment"] == expected, e


def test_only_target_users_are_messaged_and_all_users_qualify_from_the_start(demo: Path) -> None:
    messaged_outside_target = rows(
        demo,
        """
        select m.campaign_id, m.user_id, e.assignment
        from fct_campaign_messages m
        left join campaign_exposures e using (campaign_id, user_id)
        where e.assignment is distinct from 'target'
        """,
    )
    assert messaged_outside_target == []
    # all_users: every user identified before the end qualifies, at the later of the start and identification
    mismatched = rows(
        demo,
        """
        select c.campaign_id, u.user_id
        from dim_campaigns c
        join dim_users u on u.is_identified and u.identified_at < c.ends_at
        full join campaign_exposures e on e.campaign_id = c.campaign_id and e.user_id = u.user_id
        where e.qualified_at is distinct from greatest(u.identified_at, c.starts_at)
        """,
    )
    assert mismatched == []


def test_performance_counts_add_up(demo: Path) -> None:
    report = rows(demo, "select * from rpt_campaign_performance")
    events = {
        r["campaign_id"]: r["n"]
        for r in rows(
            demo,
            "select campaign_id, count(distinct user_id) as n from fct_events"
            " where event_name = 'Notification Sent' group by 1",
        )
    }
    assert len(report) == 3
    for r in report:
        assert r["qualified_users"] == r["target_users"] + r["control_users"] + r["global_control_users"]
        assert r["sent"] == events[r["campaign_id"]] == r["delivered"]
        assert r["sent"] >= r["viewed"] >= r["clicked"] > 0
        assert r["converted"] > 0 and r["influenced"] > 0
        assert r["sent"] >= r["converted"] + r["influenced"]
        assert math.isclose(r["click_through_rate"], r["clicked"] / r["viewed"])
        assert r["revenue"] > 0
    credits = rows(
        demo,
        "select conversion_event_key, sum(credit_last_touch) as last, sum(credit_first_touch) as first,"
        " sum(credit_linear) as linear from fct_campaign_attribution group by 1",
    )
    assert credits and all(
        math.isclose(c["last"], 1) and math.isclose(c["first"], 1) and math.isclose(c["linear"], 1) for c in credits
    )


# ------------------------------------------------------------------------------- lift against scipy


def goal_matches(campaign: dict, properties: str | None) -> bool:
    if campaign["goal_filter_property"] is None:
        return True
    value = (json.loads(properties) if properties else {}).get(campaign["goal_filter_property"])
    if value is None:
        return False
    op, target = campaign["goal_filter_op"], campaign["goal_filter_value"]
    if op in ("eq", "neq"):
        return (str(value) == target) == (op == "eq")
    compare = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}[op]
    return compare(float(value), float(target))


def outcomes_by_group(warehouse: Path, campaign: dict) -> dict[str, list[tuple[bool, float]]]:
    """(converted, revenue) of every qualified user per group, recomputed here from fct_events."""
    window = timedelta(hours=max(campaign["click_window_hours"], campaign["influence_window_hours"]))
    goals: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for e in rows(
        warehouse,
        f"select user_id, event_at, amount, properties from fct_events where event_name = '{campaign['goal_event']}'",
    ):
        if goal_matches(campaign, e["properties"]):
            goals[e["user_id"]].append((e["event_at"], float(e["amount"] or 0)))
    groups: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    for x in rows(warehouse, f"select * from campaign_exposures where campaign_id = '{campaign['campaign_id']}'"):
        inside = [a for at, a in goals[x["user_id"]] if x["qualified_at"] <= at <= x["qualified_at"] + window]
        groups[x["assignment"]].append((bool(inside), sum(inside)))
    return groups


def test_lift_statistics_match_scipy(demo: Path) -> None:
    campaigns = {c["campaign_id"]: c for c in rows(demo, "select * from dim_campaigns")}
    compared = 0
    for lift in rows(demo, "select * from rpt_campaign_lift"):
        campaign = campaigns[lift["campaign_id"]]
        assert campaign["click_window_hours"] == 24 * campaign["conversion_window_days"]
        groups = outcomes_by_group(demo, campaign)
        target, control = groups["target"], groups["campaign_control"]
        n_t, n_c = len(target), len(control)
        x_t, x_c = sum(c for c, _ in target), sum(c for c, _ in control)
        assert (lift["target_users"], lift["control_users"]) == (n_t, n_c)
        assert (lift["target_converted"], lift["control_converted"]) == (x_t, x_c)
        assert lift["global_control_users"] == len(groups["global_control"])
        assert lift["lift_note"] is None and min(n_c, x_c, x_t) > 0, lift
        compared += 1
        p_t, p_c = x_t / n_t, x_c / n_c
        # difference of proportions, unpooled Wald interval
        half = Z_975 * math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
        assert lift["conversion_rate_difference"] == pytest.approx(p_t - p_c, abs=1e-12)
        assert lift["conversion_rate_difference_ci_low"] == pytest.approx(p_t - p_c - half, abs=1e-9)
        assert lift["conversion_rate_difference_ci_high"] == pytest.approx(p_t - p_c + half, abs=1e-9)
        # pooled two-proportion z test = chi-squared test of the 2x2 table without continuity correction
        table = [[x_t, n_t - x_t], [x_c, n_c - x_c]]
        assert lift["p_value"] == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, abs=1e-6)
        # relative lift with Katz's log interval = scipy's relative risk interval
        risk = stats.contingency.relative_risk(x_t, n_t, x_c, n_c)
        interval = risk.confidence_interval(confidence_level=0.95)
        assert lift["conversion_lift"] == pytest.approx(risk.relative_risk - 1, rel=1e-9)
        assert lift["conversion_lift_ci_low"] == pytest.approx(interval.low - 1, rel=1e-9)
        assert lift["conversion_lift_ci_high"] == pytest.approx(interval.high - 1, rel=1e-9)
        # revenue per user, Welch's t interval
        welch = stats.ttest_ind([r for _, r in target], [r for _, r in control], equal_var=False)
        welch_interval = welch.confidence_interval(confidence_level=0.95)
        assert lift["revenue_per_user_difference_ci_low"] == pytest.approx(welch_interval.low, abs=1e-6)
        assert lift["revenue_per_user_difference_ci_high"] == pytest.approx(welch_interval.high, abs=1e-6)
    assert compared == 3


def test_exposed_users_convert_more_than_control_and_the_lift_table_says_so_with_an_interval(demo: Path) -> None:
    lifts = rows(demo, "select * from rpt_campaign_lift")
    for lift in lifts:
        assert lift["target_conversion_rate"] > lift["control_conversion_rate"], lift
        assert lift["conversion_lift"] > 0
        low, high = lift["conversion_rate_difference_ci_low"], lift["conversion_rate_difference_ci_high"]
        assert low < lift["conversion_rate_difference"] < high
        assert lift["conversion_lift_ci_low"] < lift["conversion_lift"] < lift["conversion_lift_ci_high"]
    # at least one campaign's effect is clear of zero at 95%
    assert any(lift["conversion_rate_difference_ci_low"] > 0 and lift["is_significant"] for lift in lifts)


# ------------------------------------------------------------------------ the statistics macros, both engines


def render_macro(name: str, argument: str) -> str:
    template = jinja2.Environment().from_string((PROJECT / "macros" / f"{name}.sql").read_text())
    return str(getattr(template.module, name)(argument))


Z_VALUES = [0.0, 0.01, 0.3, 1.0, 1.959963984540054, 2.5, -3.2, 5.0, 8.0, 12.0, 40.0]
DEGREES = [29, 30, 45.5, 100, 1000, 1e6]


def macro_query() -> str:
    """Each macro over its grid: p-values of z statistics, t quantiles of degrees of freedom."""
    z = " union all ".join(f"select {v} as v" for v in Z_VALUES)
    df = " union all ".join(f"select {v} as v" for v in DEGREES)
    p_value, t_quantile = render_macro("normal_two_sided_p_value", "v"), render_macro("t_quantile_975", "v")
    return f"select 'p', v, {p_value} from ({z}) as z union all select 't', v, {t_quantile} from ({df}) as df"


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_p_value_and_t_quantile_macros_agree_with_scipy(engine: str) -> None:
    if engine == "duckdb":
        result = duckdb.sql(macro_query()).fetchall()
    else:
        with psycopg2.connect(**pg_params("postgres")) as con, con.cursor() as cursor:
            cursor.execute(macro_query())
            result = cursor.fetchall()
    assert result
    values = {(kind, float(v)): float(value) for kind, v, value in result}
    assert len(values) == len(Z_VALUES) + len(DEGREES)
    for z in Z_VALUES:
        assert values["p", z] == pytest.approx(2 * stats.norm.sf(abs(z)), abs=1.5e-7), z
    for df in DEGREES:
        assert values["t", df] == pytest.approx(stats.t.ppf(0.975, df), abs=4e-8), df


def test_sync_log_sends_become_messages_and_an_early_as_of_qualifies_nobody(demo: Path, tmp_path: Path) -> None:
    """One rebuild of a copy checks two things: the senders' sync_log (contract: audience, destination,
    campaign_id, user_id, action, status, reason, run_id, logged_at) feeds fct_campaign_messages once it exists,
    and a backfill of a day before the campaigns started lists no exposures yet."""
    first_start = min(c["start_date"] for c in rows(demo, "select start_date from dim_campaigns"))
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(demo.read_bytes())
    with duckdb.connect(str(copy)) as con:
        con.execute(
            """
            create table main.sync_log as select * from (values
                ('winback', 'sendgrid', 'cmp_winback_email', 'u_sent', 'send', 'sent', null, 'r1',
                 timestamp '2026-10-30 09:00:00'),
                ('winback', 'sendgrid', 'cmp_winback_email', 'u_failed', 'send', 'failed', 'HTTP 400: bad address',
                 'r1', timestamp '2026-10-30 09:00:00'),
                ('winback', 'sendgrid', 'cmp_winback_email', 'u_skipped', 'skip', 'skipped', 'no consent', 'r1',
                 timestamp '2026-10-30 09:00:00'),
                ('newsletter', 'sendgrid', null, 'u_sent', 'send', 'sent', null, 'r1', timestamp '2026-10-30 09:00:00')
            ) as log(audience, destination, campaign_id, user_id, action, status, reason, run_id, logged_at)
            """
        )
    as_of = datetime.combine(first_start, datetime.min.time())
    run_dbt(
        copy,
        "run",
        "--select",
        "campaign_exposures",
        "int_campaigns__messages",
        "fct_campaign_messages",
        as_of=as_of,
        tmp=tmp_path,
    )
    assert rows(copy, "select count(*) as n from campaign_exposures")[0]["n"] == 0
    synced = rows(
        copy,
        "select user_id, destination, send_status, failure_reason, sent_at, delivered_at from fct_campaign_messages"
        " where message_source = 'rekindle_sync' order by user_id",
    )
    sent_at = datetime(2026, 10, 30, 9)
    assert synced == [
        {"user_id": "u_failed", "destination": "sendgrid", "send_status": "failed",
         "failure_reason": "HTTP 400: bad address", "sent_at": None, "delivered_at": None},
        {"user_id": "u_sent", "destination": "sendgrid", "send_status": "sent",
         "failure_reason": None, "sent_at": sent_at, "delivered_at": sent_at},
    ]  # fmt: skip
