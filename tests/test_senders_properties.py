"""Properties of the sync over random histories of segment changes (hypothesis):

* mirror: after every run the destination holds exactly the segment's current members;
* append: every member who was ever in the segment is sent exactly once, however often it leaves and rejoins.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from fakes.braze import FakeBraze
from fakes.twilio import FakeTwilio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from senders_helpers import AS_OF, START, make_warehouse, set_segment, settings_for, write_audiences
from senders_helpers import user_ids as ids

from senders.http import RetryPolicy
from senders.sync import sync_audiences

USERS = ids(24)
FAST = RetryPolicy(max_retries=2, base_delay=0.0, max_delay=0.0, timeout=5)
histories = st.lists(st.sets(st.sampled_from(USERS)), min_size=1, max_size=5)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories, batch_rows=st.integers(min_value=1, max_value=30))
def test_mirror_destination_equals_the_segment_after_every_run(monkeypatch, history, batch_rows):
    with tempfile.TemporaryDirectory() as tmp, FakeBraze() as api:
        tmp_path = Path(tmp)
        wh = make_warehouse(tmp_path / "wh.duckdb", users=len(USERS))
        monkeypatch.setenv(
            "AIRFLOW_CONN_BRAZE_P", f'{{"password": "{api.api_key}", "extra": {{"base_url": "{api.base_url}"}}}}'
        )
        config = write_audiences(
            tmp_path / "a.yml",
            [{"name": "m", "segment": "s", "destination": "braze", "conn_id": "braze_p", "fields": ["user_id"],
              "batch_rows": min(batch_rows, 75), "options": {"attribute": "in_m"}}],
        )  # fmt: skip
        for members in history:
            set_segment(wh, "s", members)
            sync_audiences(settings_for(wh, tmp_path / "out"), START, AS_OF, config=config, policy=FAST,
                           allow_large_change=True, report=lambda _: None)  # fmt: skip
            assert api.attribute_members("in_m") == members


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories)
def test_append_sends_each_member_once(monkeypatch, history):
    with tempfile.TemporaryDirectory() as tmp, FakeTwilio() as api:
        tmp_path = Path(tmp)
        wh = make_warehouse(tmp_path / "wh.duckdb", users=len(USERS))
        connection = {"login": api.account_sid, "password": api.auth_token, "extra": {"base_url": api.base_url}}
        monkeypatch.setenv("AIRFLOW_CONN_TW_P", json.dumps(connection))
        config = write_audiences(
            tmp_path / "a.yml",
            [{"name": "a", "segment": "s", "destination": "twilio_sms", "conn_id": "tw_p", "fields": ["phone"],
              "options": {"template": "Back in stock", "from": "+15005550006"}}],
        )  # fmt: skip
        ever: set[str] = set()
        for members in history:
            set_segment(wh, "s", members)
            ever |= members
            sync_audiences(settings_for(wh, tmp_path / "out"), START, AS_OF, config=config, policy=FAST,
                           allow_large_change=True, report=lambda _: None)  # fmt: skip
        recipients = [m["to"] for m in api.messages]
        assert len(recipients) == len(set(recipients)) == len(ever)


# ---- the warehouse's fingerprint (senders.sync.fingerprint_sql) is Python's, byte for byte -------------------
# A fingerprint that differed from the one sync_state holds would resend every member on the next run.
texts = st.one_of(
    st.none(),
    st.text(alphabet="aZ9 .@+-'\\\"" + "\t\n\x1f\x00\u00a0\u2028é", max_size=8),
    st.sampled_from(["", " ", "Ann Lee", " Ann  de Lee ", "Ann", "x "]),
)
profiles = st.lists(st.fixed_dictionaries({c: texts for c in ("email", "name", "city", "country")}), max_size=20)


@settings(max_examples=60, deadline=None)
@given(rows=profiles)
def test_the_warehouse_fingerprints_members_as_python_does(rows):
    import duckdb

    from senders.audiences import load_audiences
    from senders.state import Warehouse
    from senders.sync import fingerprint, member_fields, read_candidates

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        wh = make_warehouse(tmp_path / "wh.duckdb", users=len(rows))
        with duckdb.connect(str(wh)) as con:
            for i, row in enumerate(rows, start=1):
                con.execute(
                    "update dim_users set email = ?, name = ?, city = ?, country = ? where user_id = ?",
                    [row["email"], row["name"], row["city"], row["country"], ids(len(rows))[i - 1]],
                )
        set_segment(wh, "s", ids(len(rows)))
        fields = ["user_id", "email", "first_name", "last_name", "city", "country", "segment_name"]
        config = write_audiences(
            tmp_path / "a.yml", [{"name": "f", "segment": "s", "destination": "file", "fields": fields}]
        )
        audience = load_audiences(config)[0]
        with Warehouse(settings_for(wh, tmp_path / "out")) as warehouse:
            candidates = read_candidates(warehouse, audience, has_state=False, has_suppressions=False)
        assert len(candidates) == len(rows)
        for candidate, _ in candidates:
            if candidate.fingerprint is not None or candidate.values["name"] is None:
                assert candidate.fingerprint == fingerprint(member_fields(audience, candidate.values)), candidate
