"""Validation of single records: each kind of bad input gets its own, stable reason code."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from loaders import records

LIMIT = datetime(2026, 11, 2)
EARLIEST = datetime(1990, 1, 1)


def event(**overrides):
    base = {"type": "event", "evtName": "Charged", "ts": 1761955200, "identity": "u1", "evtData": {"Amount": 10}}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ([1, 2], "not_an_object"),
        ({"evtName": "x", "ts": 1, "identity": "u"}, "missing_type"),
        (event(type="pageview"), "unknown_type"),
        (event(identity=None), "missing_identity"),
        (event(identity="  "), "missing_identity"),
        (event(ts="yesterday"), "invalid_ts"),
        (event(ts=True), "invalid_ts"),
        (event(ts=int((LIMIT + timedelta(days=1)).timestamp())), "ts_in_future"),
        (event(ts=0), "ts_too_old"),
        (event(ts="1989-12-31T23:59:59Z"), "ts_too_old"),
        (event(evtName=None), "missing_evtName"),
        (event(evtData=[1]), "invalid_evtData"),
        (event(evtData={"k" * 121: 1}), "key_too_long"),
        (event(evtData={"note": "x" * 513}), "value_too_long"),
        (event(evtData={"Items": [{"Name": "é" * 257}]}), "value_too_long"),  # 514 bytes inside a line item
        (event(evtData={f"p{i}": i for i in range(257)}), "too_many_properties"),
        ({"type": "profile", "identity": "u1", "ts": 1761955200, "profileData": "x"}, "invalid_profileData"),
    ],
)
def test_rejections_name_their_reason(record, code):
    outcome = records.validate(record, LIMIT, EARLIEST)
    assert isinstance(outcome, records.Rejection)
    assert outcome.reason.split(":")[0] == code


def test_limits_are_inclusive():
    ok = records.validate(event(evtData={"k" * 120: "x" * 512, **{f"p{i}": i for i in range(255)}}), LIMIT, EARLIEST)
    assert isinstance(ok, records.EventRow)


def test_ts_forms_agree():
    epoch = records.validate(event(ts=1761955200), LIMIT, EARLIEST)
    iso = records.validate(event(ts="2025-11-01T00:00:00Z"), LIMIT, EARLIEST)
    text = records.validate(event(ts="1761955200"), LIMIT, EARLIEST)
    offset = records.validate(event(ts="2025-11-01T01:00:00+01:00"), LIMIT, EARLIEST)
    assert epoch.event_ts == iso.event_ts == text.event_ts == offset.event_ts == datetime(2025, 11, 1)


def test_numeric_identity_is_text_and_object_id_alone_is_enough():
    row = records.validate(event(identity=42), LIMIT, EARLIEST)
    assert row.identity == "42"
    anonymous = records.validate(event(identity=None, objectId="dev-1"), LIMIT, EARLIEST)
    assert (anonymous.identity, anonymous.object_id) == (None, "dev-1")
