"""The sections of a report email: each one reads its mart, says what matters in plain words, and carries
a compact table, a chart and the full detail as CSV.

A section whose mart is missing from the warehouse says "not available yet" and names the mart, so an
email still goes out with the sections that can be filled.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from senders.reports import charts
from senders.reports.data import ReportWarehouse
from senders.reports.subscriptions import Period, Subscription

# A difference between two groups means little below this many users in the smaller one.
MIN_GROUP_USERS = 30
SIGNIFICANCE = 0.05
TREND_DAYS = 28
RETENTION_COHORTS = 8
RETENTION_PERIODS = 6

# rpt_campaign_lift columns (built by the campaigns models); named once here.
LIFT = {
    "target_users": "target_users",
    "control_users": "control_users",
    "target_rate": "target_conversion_rate",
    "control_rate": "control_conversion_rate",
    "difference": "conversion_rate_difference",  # p_t - p_c, with a symmetric (Wald) 95% interval
    "difference_low": "conversion_rate_difference_ci_low",
    "difference_high": "conversion_rate_difference_ci_high",
    "relative_lift": "conversion_lift",  # p_t / p_c - 1, with an asymmetric (Katz) 95% interval
    "relative_low": "conversion_lift_ci_low",
    "relative_high": "conversion_lift_ci_high",
    "p_value": "p_value",
    "note": "lift_note",
}


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    format: Callable[[Any], str] = str


@dataclass
class Table:
    columns: list[Column]
    rows: list[dict[str, Any]]
    caption: str | None = None

    def cells(self) -> list[list[str]]:
        return [["–" if row.get(c.key) is None else c.format(row[c.key]) for c in self.columns] for row in self.rows]


@dataclass
class Chart:
    name: str  # unique within the email; becomes part of the Content-ID
    png: bytes
    alt: str


@dataclass
class Attachment:
    filename: str
    text: str


@dataclass
class Section:
    key: str
    title: str
    summary: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    unavailable: str | None = None  # why there are no figures


def count(value: Any) -> str:
    return f"{int(value):,}"


def percent(value: Any) -> str:
    return f"{float(value):.1%}"


def signed_percent(value: Any) -> str:
    return f"{float(value):+.1%}"


def money(value: Any) -> str:
    return f"{float(value):,.2f}"


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _csv_number(v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def _csv_number(value: Any) -> Any:
    """Ten significant digits: an average of doubles can differ in its last bits from one run to the next (SQL
    leaves the order of the rows open; rpt_campaign_lift's revenue per user did), and a rerun must write the
    same email byte for byte."""
    return f"{value:.10g}" if isinstance(value, float) else value


def _not_available(key: str, title: str, mart: str) -> Section:
    return Section(key, title, unavailable=f"{title}: not available yet (the warehouse has no {mart}).")


# -- campaigns -------------------------------------------------------------------------------------------
CAMPAIGN_COLUMNS = [
    Column("campaign_name", "Campaign"),
    Column("channel", "Channel"),
    Column("sent", "Sent", count),
    Column("clicked", "Clicked", count),
    Column("click_through_rate", "CTR", percent),
    Column("converted", "Converted", count),
    Column("revenue", "Revenue", money),
    Column("target_conversion_rate", "Target conv.", percent),
    Column("control_conversion_rate", "Control conv.", percent),
    Column("conversion_lift", "Lift", signed_percent),
]


def lift_sentence(name: str, lift: dict[str, Any]) -> str:
    """'Campaign X lifted conversion by 12.0% (95% CI 4.0% to 20.0%), p = 0.030 …', or why there is no figure."""
    get = {key: lift.get(column) for key, column in LIFT.items()}
    if get["note"]:
        return f"Campaign {name}: no reliable lift: {get['note']}."
    control_users = get["control_users"]
    if control_users is not None and int(control_users) < MIN_GROUP_USERS:
        return (
            f"Campaign {name}: no reliable lift: the control group has {int(control_users):,} users "
            f"(fewer than {MIN_GROUP_USERS})."
        )
    if get["relative_lift"] is None:
        return f"Campaign {name}: no reliable lift: the warehouse has no lift figure for it."
    relative = float(get["relative_lift"])
    sentence = f"Campaign {name} {'lifted' if relative >= 0 else 'lowered'} conversion by {abs(relative):.1%}"
    if get["relative_low"] is not None and get["relative_high"] is not None:
        sentence += f" (95% CI {float(get['relative_low']):+.1%} to {float(get['relative_high']):+.1%})"
    if get["p_value"] is not None:
        sentence += f", p = {float(get['p_value']):.3f}"
    if get["target_rate"] is not None and get["control_rate"] is not None:
        sentence += f": {float(get['target_rate']):.1%} of the target group converted against "
        sentence += f"{float(get['control_rate']):.1%} of the control group"
        if None not in (get["difference"], get["difference_low"], get["difference_high"]):
            half_width = (float(get["difference_high"]) - float(get["difference_low"])) / 2
            points = 100 * float(get["difference"])
            sentence += f", a difference of {points:+.1f} ± {100 * half_width:.1f} percentage points"
    if get["p_value"] is not None and float(get["p_value"]) >= SIGNIFICANCE:
        sentence += "; not statistically significant, the difference may be chance"
    return sentence + "."


def campaigns_section(warehouse: ReportWarehouse, subscription: Subscription, period: Period) -> Section:
    title = "Campaigns"
    performance = warehouse.campaign_performance(period, subscription.filters.get("campaign"))
    if performance is None:
        return _not_available("campaigns", title, "rpt_campaign_performance")
    section = Section("campaigns", title)
    if not performance:
        wanted = subscription.filters.get("campaign")
        section.summary.append(
            f"No campaign {wanted!r} had started by {period.last_day:%Y-%m-%d}."
            if wanted
            else f"No campaign had started by {period.last_day:%Y-%m-%d}."
        )
        return section
    lifts = warehouse.campaign_lift([str(r["campaign_id"]) for r in performance])
    by_id = {str(r["campaign_id"]): r for r in lifts or []}
    for row in performance:
        name = row["campaign_name"]
        if lifts is not None:
            section.summary.append(lift_sentence(name, by_id.get(str(row["campaign_id"]), {})))
        elif row.get("conversion_lift") is not None:
            section.summary.append(
                f"Campaign {name} changed conversion by {float(row['conversion_lift']):+.1%} against its control "
                f"group (target {percent(row['target_conversion_rate'])} vs control "
                f"{percent(row['control_conversion_rate'])}); its confidence interval is not available yet "
                "(the warehouse has no rpt_campaign_lift)."
            )
        else:
            reason = row.get("lift_note") or "no control group figures"
            section.summary.append(f"Campaign {name}: no lift figure: {reason}.")
    section.tables.append(Table(CAMPAIGN_COLUMNS, performance))
    with_control = [r for r in performance if r.get("control_conversion_rate") is not None]
    if with_control:
        section.charts.append(
            Chart(
                "campaign-conversion",
                charts.grouped_bars(
                    [r["campaign_name"] for r in with_control],
                    {
                        "target": [float(r["target_conversion_rate"] or 0) for r in with_control],
                        "control": [float(r["control_conversion_rate"]) for r in with_control],
                    },
                    "Conversion rate, target vs control group",
                    percent=True,
                ),
                "Conversion rate of each campaign's target group against its control group",
            )
        )
    section.attachments.append(Attachment("campaign_performance.csv", to_csv(performance)))
    if lifts:
        section.attachments.append(Attachment("campaign_lift.csv", to_csv(lifts)))
    return section


# -- engagement ------------------------------------------------------------------------------------------
ENGAGEMENT_COLUMNS = [
    Column("activity_date", "Day", date.isoformat),
    Column("dau", "DAU", count),
    Column("wau", "WAU", count),
    Column("mau", "MAU", count),
    Column("stickiness", "Stickiness", percent),
    Column("new_users", "New users", count),
]


def _change(current: float, previous: float | None) -> str:
    if previous is None:
        return ""
    if previous == 0:
        return " (none in the period before)"
    return f" ({(current - previous) / previous:+.0%} on the period before)"


def engagement_section(warehouse: ReportWarehouse, subscription: Subscription, period: Period) -> Section:
    title = "Engagement"
    length = (period.end - period.start).days
    since = period.start.date() - timedelta(days=max(TREND_DAYS, 2 * length) - length)
    daily = warehouse.engagement_daily(since, period)
    if daily is None:
        return _not_available("engagement", title, "rpt_engagement_daily")
    section = Section("engagement", title)
    in_period = [r for r in daily if r["activity_date"] >= period.start.date()]
    if not in_period:
        section.summary.append(f"No engagement figures for {period.label()}.")
        return section
    before = [
        r for r in daily if period.start.date() - timedelta(days=length) <= r["activity_date"] < period.start.date()
    ]
    average_dau = sum(float(r["dau"]) for r in in_period) / len(in_period)
    previous_dau = sum(float(r["dau"]) for r in before) / len(before) if before else None
    new_users = sum(int(r["new_users"]) for r in in_period)
    previous_new = sum(int(r["new_users"]) for r in before) if before else None
    last = in_period[-1]
    section.summary += [
        f"{average_dau:,.0f} daily active users on average{_change(average_dau, previous_dau)}.",
        f"On {last['activity_date']:%Y-%m-%d}: {int(last['wau']):,} weekly and {int(last['mau']):,} monthly "
        f"active users; stickiness (DAU/MAU) {percent(last['stickiness'])}.",
        f"{new_users:,} new users{_change(new_users, previous_new)}.",
    ]
    section.tables.append(Table(ENGAGEMENT_COLUMNS, in_period))
    section.charts.append(
        Chart(
            "engagement-trend",
            charts.trend(
                [r["activity_date"] for r in daily],
                {key.upper(): [float(r[key]) for r in daily] for key in ("dau", "wau", "mau")},
                f"Active users, {daily[0]['activity_date']:%Y-%m-%d} to {daily[-1]['activity_date']:%Y-%m-%d}",
            ),
            "Daily, weekly and monthly active users over the last weeks",
        )
    )
    section.attachments.append(Attachment("engagement_daily.csv", to_csv(daily)))
    return section


# -- segments --------------------------------------------------------------------------------------------
SEGMENT_COLUMNS = [
    Column("segment_name", "Segment"),
    Column("members", "Members", count),
    Column("change", "Change", lambda v: f"{int(v):+,}"),
    Column("since", "Since", date.isoformat),
]


def segment_size_rows(history: list[dict[str, Any]], period: Period) -> list[dict[str, Any]]:
    """Per segment: members at the latest evaluation in the period, and the change since the latest one before it."""
    result = []
    for name in sorted({r["segment_name"] for r in history}):
        rows = [r for r in history if r["segment_name"] == name]
        current = [r for r in rows if r["evaluated_day"] >= period.start.date()]
        earlier = [r for r in rows if r["evaluated_day"] < period.start.date()]
        if not current:
            continue
        latest = current[-1]
        baseline = earlier[-1] if earlier else None
        result.append(
            {
                "segment_name": name,
                "evaluated_day": latest["evaluated_day"],
                "members": int(latest["members"]),
                "change": None if baseline is None else int(latest["members"]) - int(baseline["members"]),
                "since": None if baseline is None else baseline["evaluated_day"],
            }
        )
    return result


def segments_section(warehouse: ReportWarehouse, subscription: Subscription, period: Period) -> Section:
    title = "Segments"
    wanted = subscription.filters.get("segment")
    history = warehouse.segment_sizes(period, wanted)
    if history is None:
        return _not_available("segments", title, "segment_sizes_daily")
    section = Section("segments", title)
    sizes = segment_size_rows(history, period)
    if not sizes:
        which = f"segment {wanted!r}" if wanted else "any segment"
        section.summary.append(f"No evaluation of {which} in {period.label()}.")
        return section
    for row in sizes:
        change = (
            f" ({row['change']:+,} since {row['since']:%Y-%m-%d})"
            if row["change"] is not None
            else " (no earlier evaluation to compare with)"
        )
        section.summary.append(f"Segment {row['segment_name']}: {row['members']:,} members{change}.")
    section.tables.append(Table(SEGMENT_COLUMNS, sizes))
    section.charts.append(
        Chart(
            "segment-sizes",
            charts.horizontal_bars(
                [r["segment_name"] for r in sizes],
                [r["members"] for r in sizes],
                f"Members on {period.last_day:%Y-%m-%d}",
            ),
            "Members of each segment at the end of the period",
        )
    )
    in_period = [r for r in history if r["evaluated_day"] >= period.start.date()]
    section.attachments.append(Attachment("segment_sizes.csv", to_csv(in_period)))
    return section


# -- retention -------------------------------------------------------------------------------------------
def retention_section(warehouse: ReportWarehouse, subscription: Subscription, period: Period) -> Section:
    title = "Retention"
    cohorts = warehouse.retention_cohorts(period)
    if cohorts is None:
        return _not_available("retention", title, "rpt_retention_cohorts")
    section = Section("retention", title)
    grains = sorted({str(r["cohort_grain"]) for r in cohorts})
    if not grains:
        section.summary.append(f"No cohort started before {period.end:%Y-%m-%d}.")
        return section
    grain = "week" if "week" in grains else grains[0]
    # One pair of first/return events: any activity on both sides when the mart has it (its default).
    pairs = sorted({(str(r.get("first_event", "any")), str(r.get("return_event", "any"))) for r in cohorts})
    pair = ("any", "any") if ("any", "any") in pairs else pairs[0]
    rows = [
        r
        for r in cohorts
        if str(r["cohort_grain"]) == grain
        and (str(r.get("first_event", "any")), str(r.get("return_event", "any"))) == pair
    ]
    starts = sorted({r["cohort_start"] for r in rows})[-RETENTION_COHORTS:]
    cell = {(r["cohort_start"], int(r["period_number"])): r for r in rows if r["cohort_start"] in starts}
    periods = list(range(RETENTION_PERIODS + 1))
    matrix = [[None if (s, p) not in cell else float(cell[(s, p)]["retention_rate"]) for p in periods] for s in starts]
    # The summary uses finished periods only: the one holding the as-of instant may still gain returns.
    first_return = [
        (s, cell[(s, 1)]) for s in starts if (s, 1) in cell and cell[(s, 1)].get("is_complete_period", True)
    ]
    if first_return:
        latest_start, latest = first_return[-1]
        weights = sum(int(r["cohort_users"]) for _, r in first_return)
        average = sum(int(r["retained_users"]) for _, r in first_return) / weights if weights else 0.0
        who = "users who started" if pair == ("any", "any") else f"users whose first {pair[0]} was"
        back = "came back" if pair == ("any", "any") else f"did {pair[1]} again"
        section.summary.append(
            f"Of the {int(latest['cohort_users']):,} {who} in the {grain} of {latest_start:%Y-%m-%d}, "
            f"{float(latest['retention_rate']):.1%} {back} the next {grain}; across the last {len(first_return)} "
            f"cohorts, {average:.1%} {back} in their second {grain}."
        )
    else:
        section.summary.append(f"No {grain} cohort is old enough to show a return yet.")
    columns = [Column("cohort_start", "Cohort", date.isoformat), Column("cohort_users", "Users", count)]
    columns += [Column(f"p{p}", f"{grain.capitalize()} {p}", percent) for p in periods[1:]]
    table_rows = []
    for start, values in zip(starts, matrix, strict=True):
        size = next((r["cohort_users"] for (s, _), r in cell.items() if s == start), None)
        table_rows.append({"cohort_start": start, "cohort_users": size, **{f"p{p}": values[p] for p in periods[1:]}})
    section.tables.append(Table(columns, table_rows))
    section.charts.append(
        Chart(
            "retention-heat-map",
            charts.heat_map(
                [f"{s:%Y-%m-%d}" for s in starts], [str(p) for p in periods], matrix, f"Retention by {grain} cohort"
            ),
            f"Share of each {grain} cohort active again in the {grain}s after it started",
        )
    )
    section.attachments.append(Attachment("retention_cohorts.csv", to_csv(rows)))
    return section


# -- funnel ----------------------------------------------------------------------------------------------
FUNNEL_COLUMNS = [
    Column("step_number", "Step"),
    Column("step_event", "Event"),
    Column("users_reached", "Users", count),
    Column("from_previous", "From previous", percent),
    Column("from_start", "From start", percent),
]


def funnel_section(warehouse: ReportWarehouse, subscription: Subscription, period: Period) -> Section:
    title = "Funnels"
    rows = warehouse.funnels(subscription.filters.get("funnel"))
    if rows is None:
        return _not_available("funnel", title, "rpt_funnels")
    section = Section("funnel", title)
    names = sorted({r["funnel_name"] for r in rows})
    if not names:
        section.summary.append("No funnel figures.")
        return section
    for name in names:
        steps = sorted((r for r in rows if r["funnel_name"] == name), key=lambda r: int(r["step_number"]))
        reached = [int(r["users_reached"]) for r in steps]
        table_rows = [
            {
                "step_number": int(step["step_number"]),
                "step_event": step.get("step_description") or step["step_event"],
                "users_reached": users,
                "from_previous": None if i == 0 or not reached[i - 1] else users / reached[i - 1],
                "from_start": users / reached[0] if reached[0] else None,
            }
            for i, (step, users) in enumerate(zip(steps, reached, strict=True))
        ]
        sentence = f"Funnel {name}: {reached[0]:,} users did {steps[0]['step_event']}"
        if len(steps) > 1 and reached[0]:
            sentence += f", {reached[-1]:,} ({reached[-1] / reached[0]:.1%}) reached {steps[-1]['step_event']}"
            drops = [(1 - r["from_previous"], i) for i, r in enumerate(table_rows) if r["from_previous"] is not None]
            if drops:
                drop, i = max(drops)
                before, after = steps[i - 1]["step_event"], steps[i]["step_event"]
                sentence += f"; the biggest drop is from {before} to {after} ({drop:.0%} lost)"
        section.summary.append(sentence + ".")
        section.tables.append(Table(FUNNEL_COLUMNS, table_rows, caption=f"Funnel {name}"))
        section.charts.append(
            Chart(
                f"funnel-{len(section.charts)}",
                charts.horizontal_bars(
                    [f"{r['step_number']}. {r['step_event']}" for r in table_rows], reached, f"Funnel {name}"
                ),
                f"Users reaching each step of funnel {name}",
            )
        )
    section.attachments.append(Attachment("funnels.csv", to_csv(rows)))
    return section


BUILDERS = {
    "campaigns": campaigns_section,
    "engagement": engagement_section,
    "segments": segments_section,
    "retention": retention_section,
    "funnel": funnel_section,
}


def build_sections(warehouse: ReportWarehouse, subscription: Subscription, period: Period) -> list[Section]:
    return [BUILDERS[key](warehouse, subscription, period) for key in subscription.sections]
