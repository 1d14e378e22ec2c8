"""What `make demo` prints at the end: what went in, what came out, and where to look."""

from __future__ import annotations

import duckdb

from loaders.settings import load_settings


def _table(rows: list[tuple], header: list[str]) -> list[str]:
    cells = [
        header,
        *[["–" if v is None else (f"{v:.1%}" if isinstance(v, float) else str(v)) for v in r] for r in rows],
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  " + "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]


def summary_lines() -> list[str]:
    settings = load_settings()
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        files, records, events, profiles, duplicates, quarantined = con.execute(
            "select count(*), sum(input_records), sum(loaded_events), sum(loaded_profiles), sum(duplicates),"
            " sum(quarantined) from main.load_manifest where status = 'loaded'"
        ).fetchone()
        reasons = con.execute(
            "select split_part(reason, ':', 1) as kind, count(*) from main.quarantine_events group by 1 order by 2 desc"
        ).fetchall()
        users, identified, reachable = con.execute(
            "select count(*), count(*) filter (where is_identified), count(*) filter (where can_email)"
            " from main.dim_users"
        ).fetchone()
        segments = con.execute(
            "select d.segment_name, count(m.user_id) from main.segment_definitions d"
            " left join main.segment_members m using (segment_name) group by 1 order by 1"
        ).fetchall()
        campaigns = con.execute(
            "select campaign_name, channel, sent, clicked, converted, target_conversion_rate,"
            " control_conversion_rate, conversion_lift from main.rpt_campaign_performance order by start_date"
        ).fetchall()
    finally:
        con.close()
    exports = sorted(settings.exports.rglob("*.csv")) if settings.exports.exists() else []
    emails = sorted(settings.outbox.glob("*.eml")) if settings.outbox.exists() else []
    docs = settings.out / "docs" / "dbt" / "index.html"
    lines = [
        "",
        "Rekindle demo — done",
        f"  loaded      {files} files, {records:,} records: {events:,} events + {profiles:,} profile updates,"
        f" {duplicates:,} duplicates dropped, {quarantined:,} quarantined",
        "  quarantine  " + ", ".join(f"{kind} {n}" for kind, n in reasons),
        f"  users       {users:,} ({identified:,} identified, {reachable:,} reachable by email)",
        "  segments    " + ", ".join(f"{name} {n:,} members" for name, n in segments),
        "",
        "Campaigns (rpt_campaign_performance)",
        *_table(
            campaigns, ["campaign", "channel", "sent", "clicked", "converted", "target conv", "control conv", "lift"]
        ),
        "",
        "Where to look",
        f"  warehouse   {settings.warehouse}",
        *[f"  export      {path}" for path in exports],
        *[f"  email       {path}" for path in emails],
        f"  dbt docs    {docs}",
        f"  gx docs     {settings.out / 'docs' / 'gx' / 'index.html'}  (the quality gate's Data Docs)",
        f"  airflow log {settings.out / 'demo-airflow.log'}",
        "",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(summary_lines()))
