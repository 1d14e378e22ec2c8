"""The sync on a Postgres warehouse (contract 6): marts read from, and state written to, the profile's schema."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import psycopg2
from conftest import pg_params, throwaway_pg_database
from fakes.braze import FakeBraze
from fakes.meta import FakeMeta
from senders_helpers import AS_OF, START, connection_env, write_audiences

from loaders.settings import Settings
from senders.sync import sync_audiences

SCHEMA = "rekindle"


def make_pg_marts(dbname: str, members: list[str]) -> None:
    with psycopg2.connect(**pg_params(dbname)) as con, con.cursor() as cur:
        cur.execute(f"create schema {SCHEMA}")
        cur.execute(
            f"create table {SCHEMA}.dim_users (user_id varchar, email varchar, phone varchar, name varchar,"
            " can_email boolean, can_sms boolean, can_push boolean, can_whatsapp boolean, is_global_control boolean)"
        )
        cur.execute(
            f"create table {SCHEMA}.segment_members (user_id varchar, email varchar, qualified_at timestamp,"
            " evaluated_at timestamp, segment_name varchar)"
        )
        cur.execute(
            f"create table {SCHEMA}.campaign_exposures (campaign_id varchar, user_id varchar, assignment varchar)"
        )
        for i in range(1, 21):
            cur.execute(
                f"insert into {SCHEMA}.dim_users values (%s, %s, null, %s, %s, false, false, false, %s)",
                [f"u{i:02d}", f"u{i}@example.com", f"Bo{i} Li", i != 3, i == 4],
            )
        for uid in members:
            cur.execute(
                f"insert into {SCHEMA}.segment_members values (%s, null, %s, %s, 'vip')",
                [uid, START, datetime(2026, 11, 1)],
            )


def test_sync_on_postgres(tmp_path: Path, monkeypatch):
    with throwaway_pg_database("senders") as dbname, FakeBraze() as api:
        monkeypatch.setenv("REKINDLE_PG_DATABASE", dbname)
        monkeypatch.setenv("REKINDLE_PG_SCHEMA", SCHEMA)
        make_pg_marts(dbname, [f"u{i:02d}" for i in range(1, 11)])
        connection_env(monkeypatch, "braze_pg", password=api.api_key, extra={"base_url": api.base_url})
        config = write_audiences(
            tmp_path / "a.yml",
            [{"name": "vip", "segment": "vip", "destination": "braze", "conn_id": "braze_pg",
              "fields": ["user_id", "email"],
              "channel": "email", "options": {"attribute": "vip"}}],
        )  # fmt: skip
        settings = Settings(landing="", warehouse=tmp_path / "unused.duckdb", target="postgres", out=tmp_path / "out")
        result = sync_audiences(settings, START, AS_OF, config=config)["vip"]
        assert result["skipped_by_reason"] == {"consent": 1, "global_control": 1}
        assert api.attribute_members("vip") == {f"u{i:02d}" for i in range(1, 11)} - {"u03", "u04"}
        with psycopg2.connect(**pg_params(dbname)) as con, con.cursor() as cur:
            cur.execute(f"delete from {SCHEMA}.segment_members where user_id = 'u10'")
            cur.execute(f"select count(*) from {SCHEMA}.sync_state")
            assert cur.fetchone() == (8,)
        again = sync_audiences(settings, START, AS_OF, config=config)["vip"]
        assert (again["added"], again["removed"]) == (0, 1)
        assert "u10" not in api.attribute_members("vip")
        with psycopg2.connect(**pg_params(dbname)) as con, con.cursor() as cur:
            cur.execute(f"select action, status, count(*) from {SCHEMA}.sync_log group by 1, 2 order by 1, 2")
            # the two skipped members are logged when their skip starts, not again on the second run
            assert cur.fetchall() == [("add", "sent", 8), ("remove", "sent", 1), ("skip", "skipped", 2)]
            cur.execute(f"select outcome, added, removed from {SCHEMA}.sync_runs order by started_at")
            assert cur.fetchall() == [("ok", 8, 0), ("ok", 0, 1)]


def test_meta_replace_and_changed_email_on_postgres_with_a_state_table_from_before_hashes(tmp_path: Path, monkeypatch):
    """The replace ledger, the stored hashes and their removal on Postgres; a sync_state created before the hash
    columns existed gains them."""
    import hashlib

    def sha(value: str) -> str:
        return hashlib.sha256(value.encode()).hexdigest()

    with throwaway_pg_database("senders") as dbname, FakeMeta() as api:
        monkeypatch.setenv("REKINDLE_PG_DATABASE", dbname)
        monkeypatch.setenv("REKINDLE_PG_SCHEMA", SCHEMA)
        make_pg_marts(dbname, [f"u{i:02d}" for i in range(5, 15)])
        with psycopg2.connect(**pg_params(dbname)) as con, con.cursor() as cur:
            cur.execute(
                f"create table {SCHEMA}.sync_state (audience varchar not null, user_id varchar not null,"
                " fingerprint varchar not null, synced_at timestamp not null, run_id varchar not null,"
                " primary key (audience, user_id))"
            )
        audience_id = api.create_audience()
        connection_env(monkeypatch, "meta_pg", password=api.access_token, extra={"base_url": api.base_url})
        config = write_audiences(
            tmp_path / "a.yml",
            [{"name": "ca", "segment": "vip", "destination": "meta_custom_audience", "conn_id": "meta_pg",
              "fields": ["email"], "identifiers": ["email"], "batch_rows": 4, "options": {"audience_id": audience_id}}],
        )  # fmt: skip
        settings = Settings(landing="", warehouse=tmp_path / "unused.duckdb", target="postgres", out=tmp_path / "out")
        assert sync_audiences(settings, START, AS_OF, config=config)["ca"]["added"] == 10
        assert len(api.requests_to("POST", "/usersreplace")) == 3
        assert api.audience_members(audience_id) == {sha(f"u{i}@example.com") for i in range(5, 15)}
        with psycopg2.connect(**pg_params(dbname)) as con, con.cursor() as cur:
            cur.execute(f"update {SCHEMA}.dim_users set email = 'new6@example.com' where user_id = 'u06'")
        assert sync_audiences(settings, START, AS_OF, config=config)["ca"]["added"] == 1
        emails = api.audience_members(audience_id)
        assert sha("new6@example.com") in emails and sha("u6@example.com") not in emails and len(emails) == 10
        with psycopg2.connect(**pg_params(dbname)) as con, con.cursor() as cur:
            cur.execute(f"select count(*), count(hashes), count(stale_hashes) from {SCHEMA}.sync_state")
            assert cur.fetchone() == (10, 10, 0)
            cur.execute(f"select batches, sent_last, finished_at is not null from {SCHEMA}.sync_replace")
            assert cur.fetchall() == [(3, True, True)]
