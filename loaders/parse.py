"""CleverTap record files (.jsonl, .jsonl.gz, .json payloads, .parquet) → a `Batch`, fast and exact.

Two paths, one verdict:
- **fast path** (vectorised, in an in-memory DuckDB): every line is parsed and checked in SQL against a
  conservative predicate: a JSON object of a known type, an id, a timestamp in a form and range SQL can
  read exactly, evtName / evtData / profileData of the right shapes, properties clearly within CleverTap's
  limits. Almost every real record passes and is extracted in SQL;
- **exact path**: anything the predicate does not clearly accept goes to `records.validate` in Python,
  which either accepts it too (a numeric-string ts, a big Items list with long-but-legal strings, ...) or
  names the reason. So the reasons, and what is accepted, are exactly those of `loaders/records.py`.

Keys: `eventId` when present, else "fp:" + sha256 of the record's text as delivered (at-least-once
delivery re-sends byte copies; a record re-serialised differently is a different record). Within a
file, the first record of a key wins and the rest are counted as duplicates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loaders import records
from loaders.batch import EVENT_SCHEMA, PROFILE_SCHEMA, QUARANTINE_SCHEMA, Batch

CHUNK_BYTES = 64 << 20  # lines are handed to DuckDB in chunks of about this size
# ISO-8601 timestamps SQL reads exactly as Python's datetime.fromisoformat does; others take the exact path.
ISO_TS = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?"
LINES_SCHEMA = pa.schema([("source_line", pa.int32()), ("text", pa.string())])


@dataclass
class _Lines:
    """Decoded record texts with their positions, plus what could not even be decoded."""

    tables: list[pa.Table] = field(default_factory=list)
    rejected: list[tuple[int, str | None, str, str]] = field(default_factory=list)
    count: int = 0


def _split_lines(data: bytes) -> pa.BinaryArray:
    """Cut a buffer at every newline without a Python loop: numpy finds the offsets, Arrow wraps them."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1
    if not len(ends) or ends[-1] != len(data):
        ends = np.append(ends, len(data))  # a last line without a newline
    offsets = np.concatenate(([0], ends)).astype(np.int32)
    return pa.BinaryArray.from_buffers(pa.binary(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _decode_chunk(raw: pa.BinaryArray, first_line: int, out: _Lines) -> None:
    """Bulk-decode a chunk of raw lines; only a chunk with a bad line is walked line by line."""
    numbers = pa.array(np.arange(first_line, first_line + len(raw), dtype=np.int32))
    try:
        texts = raw.cast(pa.string())
        clean = not pc.any(pc.match_substring(texts, "\x00")).as_py()
    except pa.ArrowInvalid:
        clean = False
    if clean:
        texts = pc.utf8_rtrim(texts, characters="\r\n")
        keep = pc.not_equal(pc.utf8_trim_whitespace(texts), "")
        numbers, texts = pc.filter(numbers, keep), pc.filter(texts, keep)
    else:
        kept_numbers, kept_texts = [], []
        for number, line in zip(numbers.to_pylist(), raw.to_pylist(), strict=True):
            if not line.strip():
                continue
            try:
                text = line.rstrip(b"\r\n").decode("utf-8")
            except UnicodeDecodeError as exc:
                out.count += 1
                out.rejected.append((number, None, f"invalid_utf8: {exc.reason} at byte {exc.start}",
                                     line.decode("utf-8", "replace").rstrip("\r\n")))  # fmt: skip
                continue
            if "\x00" in text:
                out.count += 1
                out.rejected.append(
                    (number, None, "nul_byte: the line contains a NUL byte", text.replace("\x00", "\\u0000"))
                )
                continue
            kept_numbers.append(number)
            kept_texts.append(text)
        numbers, texts = pa.array(kept_numbers, pa.int32()), pa.array(kept_texts, pa.string())
    out.count += len(texts)
    out.tables.append(pa.table([numbers, texts], schema=LINES_SCHEMA))


def _read_lines(path: Path) -> _Lines:
    """Read a .jsonl(.gz) file in chunks of whole lines, numbering lines from 1 (blank ones included)."""
    out = _Lines()
    opener = gzip.open if path.name.endswith(".gz") else open
    next_line, carry = 1, b""
    with opener(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # no newline yet: keep reading
                carry = data
                continue
            carry = data[cut:]
            raw = _split_lines(data[:cut])
            _decode_chunk(raw, next_line, out)
            next_line += len(raw)
        if carry:
            _decode_chunk(_split_lines(carry), next_line, out)
    return out


def _read_payload(path: Path) -> _Lines:
    """A .json file is one upload call: {"d": [...]}. A broken payload is one bad record."""
    out = _Lines()
    raw = path.read_bytes()
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        out.count, out.rejected = 1, [(1, None, f"invalid_json: {exc}", raw[:10_000].decode("utf-8", "replace"))]
        return out
    if not isinstance(payload, dict) or not isinstance(payload.get("d"), list):
        text = raw[:10_000].decode("utf-8", "replace")
        out.count, out.rejected = 1, [(1, None, 'invalid_payload: a .json file must hold {"d": [...]}', text)]
        return out
    texts = [json.dumps(value, ensure_ascii=False) for value in payload["d"]]
    out.count = len(texts)
    out.tables.append(pa.table([pa.array(range(1, len(texts) + 1), pa.int32()), pa.array(texts, pa.string())],
                               schema=LINES_SCHEMA))  # fmt: skip
    return out


def _read_parquet(path: Path) -> _Lines:
    """Parquet with the same fields as the JSON records; each row becomes one record (position = row + 1)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    for row in rows:
        for name in ("evtData", "profileData"):
            if isinstance(row.get(name), str):  # properties stored as a JSON string column
                with contextlib.suppress(json.JSONDecodeError):  # left as a string: validation names it
                    row[name] = json.loads(row[name])
        for name, value in list(row.items()):
            if value is None:
                del row[name]  # a missing column value is an absent field, as in JSON
            elif isinstance(value, datetime):
                row[name] = (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    texts = [json.dumps(row, ensure_ascii=False, default=str) for row in rows]
    out = _Lines(count=len(texts))
    out.tables.append(pa.table([pa.array(range(1, len(texts) + 1), pa.int32()), pa.array(texts, pa.string())],
                               schema=LINES_SCHEMA))  # fmt: skip
    return out


# Python's str.strip() whitespace that occurs in practice; records.py strips the same way.
_TRIM = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"


def _trimmed(expression: str) -> str:
    return f"nullif(trim({expression}, {_TRIM}), '')"


def _ids(value: str) -> str:
    """An id as CleverTap accepts it: a non-blank string (trimmed) or an integer, as text."""
    text = f"{value} ->> '$'"
    return (
        f"case json_type({value}) when 'VARCHAR' then {_trimmed(text)}"
        f" when 'BIGINT' then {text} when 'UBIGINT' then {text} end"
    )


# The conservative fast-path predicate and extraction, over a relation `lines(source_line, text)`.
# One json_extract with a list of paths parses each line once; the rest works on the small pieces.
FAST_PATH_SQL = f"""
with objects as (
    -- CASE, not AND: json_type raises on malformed JSON, and AND does not promise to short-circuit.
    -- DuckDB's parser forgives trailing commas and Python's does not: such lines take the exact path.
    select source_line, text from lines
    where case when json_valid(text) then json_type(text) = 'OBJECT' else false end
        and not regexp_matches(text, ',\\s*[\\]}}]')
        and not contains(text, '\\u0000')  -- a NUL inside a value: the exact path names it
),
extracted as (
    select
        source_line,
        text,
        json_extract(text, ['$.type', '$.identity', '$.objectId', '$.eventId', '$.ts', '$.evtName',
                            '$.evtData', '$.profileData']) as v
    from objects
),
fields as (
    select
        source_line,
        text,
        v[1] ->> '$' as record_type,
        {_ids("v[2]")} as identity,
        {_ids("v[3]")} as object_id,
        {_ids("v[4]")} as event_id,
        json_type(v[5]) as ts_type,
        try_cast(v[5] ->> '$' as double) as ts_number,
        v[5] ->> '$' as ts_text,
        {_trimmed("v[6] ->> '$'")} as event_name,
        json_type(v[6]) as event_name_type,
        case v[1] ->> '$' when 'event' then v[7] else v[8] end as properties,
        json_type(case v[1] ->> '$' when 'event' then v[7] else v[8] end) as properties_type
    from extracted
),
timed as (
    select
        *,
        case
            when ts_type in ('BIGINT', 'UBIGINT', 'DOUBLE') and ts_number between $earliest and $latest
                then to_timestamp(ts_number)::timestamp
            when ts_type = 'VARCHAR'
                and regexp_full_match(ts_text, '{ISO_TS}')
                then try_cast(ts_text as timestamptz)::timestamp
        end as record_ts
    from fields
),
checked as (
    select
        *,
        record_type in ('event', 'profile')
        and coalesce(identity, object_id) is not null
        and record_ts between to_timestamp($earliest)::timestamp and to_timestamp($latest)::timestamp
        and (record_type = 'profile' or (event_name_type = 'VARCHAR' and event_name is not null))
        and coalesce(properties_type, 'OBJECT') = 'OBJECT'
        and (
            properties is null
            or (
                json_array_length(json_keys(properties)::json) <= {records.MAX_PROPERTIES}
                and coalesce(list_max(list_transform(json_keys(properties), lambda k: strlen(k))), 0)
                    <= {records.MAX_KEY_CHARS}
                and (
                    strlen(properties::varchar) <= {records.MAX_VALUE_BYTES}
                    or coalesce(list_max(list_transform(
                        regexp_extract_all(properties::varchar, '"(?:[^"\\\\]|\\\\.)*"'), lambda s: strlen(s) - 2)), 0)
                        <= {records.MAX_VALUE_BYTES}
                )
            )
        ) as fast
    from timed
)
select * from checked
"""


def _slow_path(lines: pa.Table, latest: datetime, earliest: datetime) -> tuple[list, list, list]:
    """records.validate on the lines the fast path did not clearly accept: accepted rows or reasons."""
    events, profiles, rejected = [], [], []
    for number, text in zip(lines["source_line"].to_pylist(), lines["text"].to_pylist(), strict=True):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            rejected.append((number, None, f"invalid_json: {exc.msg} at column {exc.colno}", text))
            continue
        row = records.validate(value, latest, earliest)
        if isinstance(row, records.Rejection):
            rejected.append((number, row.record_type, row.reason, text))
        elif isinstance(row, records.EventRow):
            events.append((number, text, row))
        else:
            profiles.append((number, text, row))
    return events, profiles, rejected


def _accepted_table(rows: list, row_type: type, schema: pa.Schema) -> pa.Table:
    """Rows the exact path accepted, with their line and text, typed like the batch they join."""
    columns = {
        "source_line": pa.array([number for number, _, _ in rows], pa.int32()),
        "text": pa.array([text for _, text, _ in rows], pa.string()),
    }
    for column in dataclasses.fields(row_type):
        columns[column.name] = pa.array(
            [getattr(row, column.name) for _, _, row in rows], schema.field(column.name).type
        )
    return pa.table(columns)


def parse_records(lines: _Lines, source_file: str, latest: datetime, earliest: datetime) -> Batch:
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        table = pa.concat_tables(lines.tables) if lines.tables else LINES_SCHEMA.empty_table()
        # DuckDB scans Arrow in parallel by record batch: small batches keep both cores busy on one file.
        table = pa.Table.from_batches(table.combine_chunks().to_batches(max_chunksize=4096), LINES_SCHEMA)
        con.register("lines", table)
        params = {
            "earliest": earliest.replace(tzinfo=UTC).timestamp(),
            "latest": latest.replace(tzinfo=UTC).timestamp(),
        }
        con.execute(f"create temp table checked as {FAST_PATH_SQL}", params)
        routed = con.sql(
            "select source_line, text from lines anti join checked using (source_line)"
            " union all select source_line, text from checked where not coalesce(fast, false)"
        ).to_arrow_table()
        slow_events, slow_profiles, rejected = _slow_path(routed, latest, earliest)
        con.register("slow_events", _accepted_table(slow_events, records.EventRow, EVENT_SCHEMA))
        con.register("slow_profiles", _accepted_table(slow_profiles, records.ProfileRow, PROFILE_SCHEMA))
        events = (
            con.sql("""
            with accepted as (
                select source_line, text, event_id, event_name, record_ts as event_ts, identity, object_id,
                       coalesce(properties::varchar, '{}') as evt_data
                from checked where fast and record_type = 'event'
                union all
                select source_line, text, event_id, event_name, event_ts, identity, object_id, evt_data
                from slow_events
            )
            select coalesce(event_id, 'fp:' || sha256(text)) as event_key, event_id, event_name,
                   event_ts, identity, object_id, evt_data, source_line
            from accepted
            qualify row_number() over (partition by event_key order by source_line) = 1
            order by source_line
        """)
            .to_arrow_table()
            .cast(EVENT_SCHEMA)
        )
        profiles = (
            con.sql("""
            with accepted as (
                select source_line, text, identity, object_id, record_ts as updated_ts,
                       coalesce(properties::varchar, '{}') as profile_data
                from checked where fast and record_type = 'profile'
                union all
                select source_line, text, identity, object_id, updated_ts, profile_data from slow_profiles
            )
            select 'fp:' || sha256(text) as profile_key, identity, object_id, updated_ts,
                   profile_data, source_line
            from accepted
            qualify row_number() over (partition by profile_key order by source_line) = 1
            order by source_line
        """)
            .to_arrow_table()
            .cast(PROFILE_SCHEMA)
        )
        accepted = (
            con.execute(
                "select count(*) filter (where fast and record_type in ('event', 'profile')) from checked"
            ).fetchone()[0]
            + len(slow_events)
            + len(slow_profiles)
        )
    finally:
        con.close()
    quarantine = sorted(lines.rejected + rejected)
    return Batch(
        source_file=source_file,
        input_records=lines.count,
        events=events,
        profiles=profiles,
        quarantine=pa.table(
            [pa.array([q[i] for q in quarantine], QUARANTINE_SCHEMA.field(i).type) for i in range(4)],
            schema=QUARANTINE_SCHEMA,
        ),
        duplicates_in_batch=accepted - events.num_rows - profiles.num_rows,
    )


def read_record_file(path: Path, source_file: str, latest: datetime, earliest: datetime) -> Batch:
    """One landing file of CleverTap records → a Batch; `latest`/`earliest` bound the accepted ts."""
    name = path.name.lower()
    if name.endswith(".json"):
        lines = _read_payload(path)
    elif name.endswith(".parquet"):
        lines = _read_parquet(path)
    else:
        lines = _read_lines(path)
    return parse_records(lines, source_file, latest, earliest)
