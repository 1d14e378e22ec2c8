"""The fast (SQL) path and the exact (Python) path of the parser agree on every record.

`records.validate` is the definition of what Rekindle accepts and why it rejects; the SQL fast path
only exists for speed. Each record below goes through `parse_records` and must come out exactly as
`records.validate` says: accepted with the same values, or quarantined with the same reason.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from loaders import parse, records

LATEST, EARLIEST = datetime(2026, 11, 2), datetime(1990, 1, 1)
T = 1761955200  # 2025-11-01


def ev(**fields):
    return {"type": "event", "evtName": "Charged", "ts": T, "identity": "u1", "evtData": {"Amount": 1}, **fields}


CORPUS = [
    ev(),
    ev(eventId="e-1"),
    ev(eventId=77),
    ev(eventId=1.5),  # not an id CleverTap accepts: fingerprinted instead
    ev(identity=42),
    ev(identity="  u1\t"),
    ev(identity="", objectId="dev-1"),
    ev(identity=None),
    ev(identity=True, objectId=None),
    ev(ts="2025-11-01T00:00:00Z"),
    ev(ts="2025-11-01T01:30:00.25+01:30"),
    ev(ts="2025-11-01 00:00:00"),
    ev(ts="1761955200"),
    ev(ts=1761955200.75),
    ev(ts="2025-02-30T00:00:00Z"),
    ev(ts="yesterday"),
    ev(ts=None),
    ev(ts=False),
    ev(ts=10**30),
    ev(ts=-5),
    ev(ts=0),
    ev(ts=int(LATEST.timestamp()) + 1),
    ev(ts=int(LATEST.timestamp())),
    ev(evtName="   "),
    ev(evtName=5),
    ev(evtData=None),
    ev(evtData=[1]),
    ev(evtData="x"),
    {k: v for k, v in ev().items() if k != "evtData"},
    ev(evtData={"k" * 120: 1}),
    ev(evtData={"k" * 121: 1}),
    ev(evtData={"é" * 61: 1}),  # 61 characters, 122 bytes: legal
    ev(evtData={"v": "x" * 512}),
    ev(evtData={"v": "x" * 513}),
    ev(evtData={"v": "é" * 256}),
    ev(evtData={"v": "é" * 257}),
    ev(evtData={"v": 'q"' * 200}),  # escapes make the raw text longer than the value
    ev(evtData={"Items": [{"Name": "n" * 300, "Category": "c" * 300}]}),  # long total, every value legal
    ev(evtData={"Items": [{"Name": "n" * 600}]}),
    ev(evtData={f"p{i}": i for i in range(256)}),
    ev(evtData={f"p{i}": i for i in range(257)}),
    ev(evtData={"nested": {"deep": ["x" * 513]}}),
    ev(evtData={"v": "a\x00b"}),  # "\u0000" in the JSON text
    ev(evtData={"k\x00": 1}),
    ev(profileData={"Email": "a@b.c"}),
    {"type": "profile", "identity": "u1", "ts": T, "profileData": {"Email": "a@b.c", "MSG-email": True}},
    {"type": "profile", "objectId": "dev-1", "ts": T},
    {"type": "profile", "identity": "u1", "ts": T, "profileData": ["x"]},
    {"type": "profile", "identity": "u1", "ts": T, "evtName": 5, "profileData": {"k" * 121: 1}},
    {"type": "pageview", "identity": "u1", "ts": T},
    {"type": 5, "identity": "u1", "ts": T},
    {"identity": "u1", "ts": T},
    [1, 2],
    "just a string",
    42,
    None,
]
RAW_LINES = ['{"type":"event",', "{bad json", '{"type":"event","evtName":"X","ts":1761955200,"identity":"u1",}']


def verdict(value) -> tuple[str, tuple | None]:
    row = records.validate(value, LATEST, EARLIEST)
    if isinstance(row, records.Rejection):
        return row.reason, None
    if isinstance(row, records.EventRow):
        return "event", (row.event_id, row.event_name, row.event_ts, row.identity, row.object_id,
                         json.loads(row.evt_data))  # fmt: skip
    return "profile", (row.identity, row.object_id, row.updated_ts, json.loads(row.profile_data))


def lines_of(texts: list[str]) -> parse._Lines:
    out = parse._Lines(count=len(texts))
    out.tables.append(pa.table([pa.array(range(1, len(texts) + 1), pa.int32()), pa.array(texts, pa.string())],
                               schema=parse.LINES_SCHEMA))  # fmt: skip
    return out


def test_fast_path_agrees_with_the_exact_validator():
    texts = [json.dumps(value, ensure_ascii=False) for value in CORPUS]
    batch = parse.parse_records(lines_of(texts), "corpus.jsonl", LATEST, EARLIEST)
    got: dict[int, tuple[str, tuple | None]] = {}
    for row in batch.events.to_pylist():
        got[row["source_line"]] = ("event", (row["event_id"], row["event_name"], row["event_ts"], row["identity"],
                                             row["object_id"], json.loads(row["evt_data"])))  # fmt: skip
    for row in batch.profiles.to_pylist():
        got[row["source_line"]] = ("profile", (row["identity"], row["object_id"], row["updated_ts"],
                                               json.loads(row["profile_data"])))  # fmt: skip
    for row in batch.quarantine.to_pylist():
        got[row["source_line"]] = (row["reason"], None)
    for line, value in enumerate(CORPUS, start=1):
        expected = verdict(value)
        actual = got[line]
        if expected[1] and expected[1][2] is not None and actual[1]:  # timestamps: agree to the millisecond
            assert abs((actual[1][2] - expected[1][2]).total_seconds()) < 1e-3, (line, value)
            actual, expected = (
                (actual[0], actual[1][:2] + actual[1][3:]),
                (expected[0], expected[1][:2] + expected[1][3:]),
            )
        assert actual == expected, (line, value)
    assert batch.input_records == len(CORPUS) and batch.duplicates_in_batch == 0  # every record got a verdict


def test_keys_and_duplicates_within_a_file():
    texts = [
        json.dumps(ev(eventId="e-1")),
        json.dumps(ev(eventId="e-1", evtName="Other")),  # same id: dup
        json.dumps(ev()),
        json.dumps(ev()),  # byte copies without id: dup
        json.dumps(ev(), indent=1).replace("\n", " "),
    ]  # same record, other bytes: a different record
    batch = parse.parse_records(lines_of(texts), "f.jsonl", LATEST, EARLIEST)
    assert batch.events["source_line"].to_pylist() == [1, 3, 5]
    assert batch.duplicates_in_batch == 2
    keys = batch.events["event_key"].to_pylist()
    assert keys[0] == "e-1" and keys[1].startswith("fp:") and keys[1] != keys[2]


def test_unparseable_lines_keep_their_numbers(tmp_path: Path):
    path = tmp_path / "day.jsonl.gz"
    body = b"\n".join([
        json.dumps(ev(eventId="a")).encode(),
        b"",
        RAW_LINES[0].encode(),
        b'{"type":"event","evtName":"X","identity":"\xff\xfe","ts":1761955200}',
        b'{"type":"event","evtName":"X\x00","identity":"u1","ts":1761955200}',
        RAW_LINES[1].encode() + b"\r",
        RAW_LINES[2].encode(),
        json.dumps(ev(eventId="b")).encode() + b"\r",
    ])  # fmt: skip
    path.write_bytes(gzip.compress(body))
    batch = parse.read_record_file(path, "day.jsonl.gz", LATEST, EARLIEST)
    assert batch.input_records == 7  # the blank line is not a record
    assert batch.events["source_line"].to_pylist() == [1, 8]
    assert [(q["source_line"], q["reason"].split(":")[0]) for q in batch.quarantine.to_pylist()] == [
        (3, "invalid_json"),
        (4, "invalid_utf8"),
        (5, "nul_byte"),
        (6, "invalid_json"),
        (7, "invalid_json"),
    ]


@pytest.mark.parametrize(
    ("content", "code"),
    [(b'{"d": {"not": "a list"}}', "invalid_payload"), (b"[1, 2]", "invalid_payload"), (b'{"d": [', "invalid_json")],
)
def test_broken_payload_is_one_quarantined_record(tmp_path: Path, content: bytes, code: str):
    path = tmp_path / "upload.json"
    path.write_bytes(content)
    batch = parse.read_record_file(path, "upload.json", LATEST, EARLIEST)
    assert batch.input_records == 1 and batch.quarantine["reason"][0].as_py().startswith(code)


def test_empty_files_are_empty_batches(tmp_path: Path):
    for name, content in [("a.jsonl", b""), ("b.jsonl", b"\n\n"), ("c.jsonl.gz", gzip.compress(b"")),
                          ("d.json", b'{"d": []}')]:  # fmt: skip
        (tmp_path / name).write_bytes(content)
        batch = parse.read_record_file(tmp_path / name, name, LATEST, EARLIEST)
        assert (batch.input_records, batch.events.num_rows, batch.quarantine.num_rows) == (0, 0, 0), name


def test_parquet_records_load_like_json(tmp_path: Path):
    import pyarrow.parquet as pq

    table = pa.table({
        "type": ["event", "event", "profile"],
        "evtName": ["Charged", None, None],
        "ts": [T, T, T],
        "identity": ["u1", "u2", "u3"],
        "eventId": ["p-1", None, None],
        "evtData": ['{"Amount": 5}', '{"Amount": 6}', None],
        "profileData": [None, None, '{"Email": "x@y.z"}'],
    })  # fmt: skip
    pq.write_table(table, tmp_path / "part.parquet")
    batch = parse.read_record_file(tmp_path / "part.parquet", "part.parquet", LATEST, EARLIEST)
    assert batch.events.to_pylist()[0]["event_key"] == "p-1"
    assert json.loads(batch.events.to_pylist()[0]["evt_data"]) == {"Amount": 5}
    assert [q["reason"].split(":")[0] for q in batch.quarantine.to_pylist()] == ["missing_evtName"]
    assert batch.profiles.num_rows == 1
