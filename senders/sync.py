"""Sync audiences to their destinations by diffing against what was last synced (contract 3).

For each audience of senders/audiences.yml, one run:

1. reads the segment's members with their profile, consent, control-group flags and suppressions, plus the
   users the destination holds from earlier runs (`sync_state`), in one query, into the connection's temporary
   table `sync_work`, with each member's skip reason and, where the warehouse can, its fingerprint and its whole
   request row (Destination.wire_sql); Python reads each member's id, decision and fingerprint, and the fields
   only of members the warehouse could not build (a built row is fetched with its batch);
2. decides who may be sent (in SQL, `skip_reason_sql`, which the quality gate uses too): a member is skipped,
   with the reason logged, when in the global control group, in the campaign's control group (or not exposed to
   the campaign), without consent for the channel, suppressed on the channel, or without any of the audience's
   identifiers;
3. diffs the eligible members against `sync_state`: joiners and changed rows are added (upserted), leavers
   are removed (mirror mode); append mode sends each member once ever. Where identifiers go out hashed (Meta,
   Google) the state keeps the hashes sent: leavers are removed by them, and a changed email or phone has its
   old hash removed after the new one is added ("unlink"). A mirror's first sync, or a run with
   --full-resync, to a destination that can replace a whole audience sends it as one replace instead (a
   Meta `usersreplace` session; Google ingest, then remove-all as of the replace's start), resumable across
   crashes through the `sync_replace` ledger;
4. stops before sending anything when the change exceeds the audience's safety limit (an upstream bug that
   empties a segment must not empty the live audience), unless overridden for this run;
5. sends in batches capped by count and bytes, adds before removes; a batch refused as invalid (400) is split
   until the bad record is isolated and logged; each batch is recorded in `sync_pending` before its request
   and, with the answer, in `sync_state` and `sync_log` in one transaction;
6. writes a `sync_runs` summary and fails (SyncFailed) when failures exceed the failure threshold. Skips reach
   `sync_log` when they start or change reason, and skip rows past the retention are pruned.

Exactly once across crashes: members a crash left in `sync_pending` are settled first. Idempotent
destinations get the same batch again (same content, so the same S3 key, file name or webhook id);
non-idempotent ones (Twilio) are reconciled against the API's record of what it received; where a
destination cannot tell, the members are logged as failed with reason `unknown_after_crash` and never resent.

Test hook: REKINDLE_SENDER_CRASH_AT=`after_request:N` (SIGKILL once the N-th batch's request was answered,
before it is recorded) or `between_batches:N` (after the N-th batch was recorded) lets the tests kill a real
sender process at those two points.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import re
import secrets
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from loaders.settings import Settings
from senders import credentials as conn
from senders.audiences import DEFAULT_PATH, DERIVED_FIELDS, PROFILE_FIELDS, SEGMENT_FIELDS, Audience, load_audiences
from senders.destinations import DESTINATIONS
from senders.destinations.base import (
    WIRE_HASHES,
    WIRE_ROW,
    AmbiguousDelivery,
    BatchOutcome,
    Destination,
    DestinationError,
    Member,
    RejectedBatch,
    ReplaceBatch,
    RunContext,
)
from senders.http import HttpClient, RetryPolicy
from senders.normalise import SqlDialect
from senders.state import Warehouse, Write

log = logging.getLogger(__name__)

# Member.hashed of a member whose row the warehouse built and keeps in the work table (AudienceSync.stage)
UNFETCHED: Mapping[str, str | None] = MappingProxyType({})
NO_FIELDS: Mapping[str, Any] = MappingProxyType({})  # its fields: none in Python (one shared mapping)
SKIP_REASONS = ("global_control", "campaign_control", "not_in_campaign", "consent", "suppressed", "missing_identifier")


class SyncFailed(RuntimeError):
    """An audience exceeded its failure threshold or its safety limit, or its destination failed."""


@dataclass
class AudienceCounts:
    considered: int = 0  # segment members looked at
    eligible: int = 0
    added: int = 0  # accepted adds/upserts (mirror, upsert)
    removed: int = 0
    sent: int = 0  # accepted sends (append)
    skipped: Counter = field(default_factory=Counter)
    failed: int = 0
    suppressed: int = 0
    retried: int = 0
    to_add: int = 0  # what the diff asked for
    to_remove: int = 0
    settled: int = 0  # members a killed attempt left in flight, settled first
    outcome: str = "ok"
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "considered": self.considered,
            "eligible": self.eligible,
            "to_add": self.to_add,
            "to_remove": self.to_remove,
            "settled": self.settled,
            "added": self.added,
            "removed": self.removed,
            "sent": self.sent,
            "skipped": sum(self.skipped.values()),
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "failed": self.failed,
            "suppressed": self.suppressed,
            "retried": self.retried,
            "outcome": self.outcome,
            "error": self.error,
        }


class Candidate(NamedTuple):
    user_id: str
    in_segment: bool
    values: dict[str, Any]
    hashed: dict[str, str | None] | None = None  # the warehouse's hashes of fields (read_candidates' `hash_sql`)
    fingerprint: str | None = None  # fingerprint(member_fields(...)), where the warehouse computed it (fingerprint_sql)


class StateRow(NamedTuple):
    """One sync_state row: what the destination holds for a member."""

    fingerprint: str
    synced_at: datetime
    hashes: str | None  # identifier hashes sent (hashed destinations), `email=<sha256>;phone=<sha256>`
    stale_hashes: str | None  # hashes a change replaced, still at the destination until removed


@dataclass
class Replace:
    """The sync_replace row of a replace in progress."""

    session_id: int
    started_at: datetime  # T: naive UTC
    batches: int  # the number of the last batch whose answer was recorded
    sent_last: bool  # the batch that ends the session was accepted
    # the number of the last request sent (written before it goes): one ahead of `batches` while a request is in
    # flight, more if a batch was split; a batch resent after a crash goes under this number
    requested: int


def format_hashes(hashes: dict[str, str]) -> str:
    return ";".join(f"{field}={value}" for field, value in sorted(hashes.items()))


def parse_hashes(text: str | None) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(";")) if text else {}


def stale_hashes(before: StateRow | None, sent: dict[str, str]) -> str | None:
    """The hashes the destination still holds for a member after an add sent `sent`: those it held before
    (current or already stale) that the add did not send again."""
    if before is None:
        return None
    held = {**parse_hashes(before.stale_hashes), **parse_hashes(before.hashes)}
    kept = set(sent.values())
    old = {field: h for field, h in held.items() if h not in kept}
    return format_hashes(old) if old else None


def log_retention_days() -> int:
    """How long skip rows stay in sync_log (REKINDLE_SYNC_LOG_SKIP_DAYS, default 90)."""
    text = os.environ.get("REKINDLE_SYNC_LOG_SKIP_DAYS", "90")
    try:
        days = int(text)
    except ValueError:
        days = -1
    if days < 1:
        raise ValueError(f"REKINDLE_SYNC_LOG_SKIP_DAYS must be a whole number of days from 1, got {text!r}")
    return days


def run_id_for(data_interval_end: datetime) -> str:
    """Derived from the interval, so a rerun of the interval is the same run for keys and idempotency ids."""
    end = data_interval_end if data_interval_end.tzinfo else data_interval_end.replace(tzinfo=UTC)
    return end.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def fingerprint(fields: dict[str, Any]) -> str:
    """What was sent, as a hash: field names and values (None distinct from ""), in the audience's order.
    A join rather than JSON: this runs for every member on every run, and is three times faster."""
    text = "\x1e".join([k + "\x1f" + ("\x00" if v is None else str(v)) for k, v in fields.items()])
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint_sql(audience: Audience, target: str, column: Callable[[str], str]) -> str | None:
    """SQL giving `fingerprint(member_fields(audience, values))` from the columns (`column(field)`), or NULL where
    Python must compute it; None when the warehouse cannot for this audience. DuckDB only (Postgres text cannot
    hold the NUL that marks a None), and text fields only (str() of a timestamp or a number is Python's own):
    a first sync of 10^6 members then fingerprints in the warehouse. The names derived from `name` are split
    there when it is printable ASCII, whose only whitespace is the ' ' that both strip() and trim remove."""
    if target != "duckdb" or any(f not in TEXT_FIELDS and f not in DERIVED_FIELDS for f in audience.fields):
        return None
    parts, name = [], f"trim({column('name')})"
    for f in audience.fields:
        if f == "first_name":
            value = f"nullif(split_part({name}, ' ', 1), '')"
        elif f == "last_name":
            rest = f"case when strpos({name}, ' ') > 0 then substr({name}, strpos({name}, ' ') + 1) else '' end"
            value = f"nullif(trim({rest}), '')"
        else:
            value = column(f)
        parts.append(f"'{f}' || chr(31) || coalesce({value}, chr(0))")
    text = " || chr(30) || ".join(parts)
    if any(f in DERIVED_FIELDS for f in audience.fields):
        plain = f"({column('name')} is null or regexp_full_match({column('name')}, '[ -~]*'))"
        return f"case when {plain} then sha256({text}) end"
    return f"sha256({text})"


def delivery_id_for(action: str, batch: Sequence[Member], fingerprints: dict[str, str]) -> str:
    """The id of a batch in sync_pending: its action, members and what they carry (the fingerprint, which
    hashes the fields, or the fields of a removal), cheaper than hashing every field again."""
    parts = [action]
    for m in batch:
        fp = fingerprints.get(m.user_id) if action not in ("remove", "unlink") else None
        parts.append(f"{m.user_id}\x1f{fp if fp is not None else sorted(m.fields.items())!r}")
    return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()


def hashed_id(user_id: str) -> str:
    """What logs and dry runs show instead of a member: a short hash of the user id."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:12]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while a sync reads and builds its members: a few seconds of CPU in
    this thread (10^6 members: tuples, dicts, named tuples, none of them cyclic) during which every full
    collection would walk all of them again (measured: 40% more CPU for building 10^6 such objects). Scoped to
    that stretch, not the whole sync: the sending that follows takes minutes, during which the rest of the
    process (an Airflow worker's other threads) must keep its collector. Nothing is frozen (gc.freeze is
    process-wide, and a member whose row the warehouse built is now a few small objects)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _crash_point(point: str, batch_number: int) -> None:
    wanted = os.environ.get("REKINDLE_SENDER_CRASH_AT", "")
    if wanted == f"{point}:{batch_number}":
        os.kill(os.getpid(), signal.SIGKILL)


# ---- reading the warehouse -----------------------------------------------------------------------------------


@dataclass
class CandidateQuery:
    """The candidates' SQL (columns c0.. as `names`, then h0.. the hashed fields, w0.. what wire_sql built from
    them, and `fp` when the warehouse fingerprints), its parameters, and where things are."""

    sql: str
    params: list[Any]
    names: list[str]
    hashed_fields: list[str]  # the keys of Candidate.hashed, in column order
    fingerprinted: bool
    wire: str | None  # the column holding WIRE_ROW, when the warehouse builds whole rows
    wire_hashes: str | None  # the column holding WIRE_HASHES
    columns: list[str]  # the names of the columns, in order


def candidate_query(
    wh: Warehouse,
    audience: Audience,
    *,
    has_state: bool,
    has_suppressions: bool,
    hash_sql: dict[str, str] | None = None,
    wire_sql: Callable[[Callable[[str], str]], dict[str, str]] | None = None,
) -> CandidateQuery:
    """The candidates' SQL: segment members and the users the destination holds for the audience, with what the
    decision needs; with `hash_sql` (field -> SQL over `u.` columns, Destination.hash_sql), also the fields it
    hashes, and with `wire_sql` (given the name of the column holding each field's hash, Destination.wire_sql)
    what it builds from those hashes (Candidate.hashed, under its keys)."""
    profile = [f for f in PROFILE_FIELDS if f in audience.fields or f in audience.identifiers]
    if any(f in audience.fields for f in DERIVED_FIELDS) and "name" not in profile:
        profile.append("name")
    segment = [f for f in SEGMENT_FIELDS if f in audience.fields]
    consent = audience.consent_column
    # (expression, name): the names are Candidate.values' keys, the expressions are selected as c0, c1, ...
    select = [
        ("w.user_id", "user_id"),
        ("m.user_id is not null", "in_segment"),
        ("u.user_id is not null", "in_profile"),
    ]
    select += [(f"m.{f}", f) for f in segment] + [(f"u.{f}", f) for f in profile]
    select.append((f"u.{consent}" if consent else "true", "consent"))
    select.append(("coalesce(u.is_global_control, false)", "is_global_control"))
    params: list[Any] = [audience.segment]
    joins = [
        "left join members as m on m.user_id = w.user_id",
        f"left join {wh.table('dim_users')} as u on u.user_id = w.user_id",
    ]
    if audience.campaign is not None:
        select.append(("e.assignment", "assignment"))
        joins.append(
            f"left join {wh.table('campaign_exposures')} as e"
            " on cast(e.campaign_id as varchar) = ? and e.user_id = w.user_id"
        )
        params.append(audience.campaign)
    else:
        select.append(("'target'", "assignment"))
    if has_suppressions and audience.channel != "none":
        select.append(("s.user_id is not null", "suppressed"))
        joins.append(f"left join {wh.table('sync_suppressions')} as s on s.channel = ? and s.user_id = w.user_id")
        params.append(audience.channel)
    else:
        select.append(("false", "suppressed"))
    names = [name for _, name in select]
    hashed_fields = list(hash_sql or {})
    aliased = [f"{expr} as c{i}" for i, (expr, _) in enumerate(select)]
    aliased += [f"{hash_sql[f]} as h{i}" for i, f in enumerate(hashed_fields)]
    # the hashes as columns h0, h1, ... so that an outer query can build on them (wire_sql)
    hash_column = {f: f"h{i}" for i, f in enumerate(hashed_fields)}
    built = wire_sql(lambda f: "c0" if f == "user_id" else hash_column.get(f)) if wire_sql and hashed_fields else {}
    # A member whose whole row the warehouse built (WIRE_ROW) needs no hash of each field:
    # those are fetched only where Python must build the row (10^6 members: four strings each fewer to convert).
    outer = [f"c{i}" for i in range(len(select))]  # (names: the outer columns end in `as <name>` or are one)
    whole = f"w{list(built).index(WIRE_ROW)}" if WIRE_ROW in built else None
    outer += [f"case when {whole} is null then h{i} end as h{i}" if whole else f"h{i}" for i in range(len(hash_column))]
    outer += [f"w{i}" for i in range(len(built))]
    sources = {"user_id": "w.user_id", **{f: f"m.{f}" for f in segment}}
    fingerprinted = fingerprint_sql(audience, wh.target, lambda f: sources.get(f, f"u.{f}"))
    if fingerprinted is not None:
        aliased.append(f"{fingerprinted} as fp")
        outer.append("fp")
    known = (
        f"select user_id from {wh.table('sync_state')} where audience = ?"
        if has_state
        else "select cast(null as varchar) as user_id where 1 = 0"
    )
    state_params = [audience.name] if has_state else []
    member_columns = ", ".join(["user_id", *segment])
    sql = f"""
        with members as (
            select {member_columns} from {wh.table("segment_members")} where segment_name = ?
        ),
        known as ({known}),
        wanted as (select user_id from members union select user_id from known)
        select {", ".join(outer)}
        from (
            select *{"".join(f", {expr} as w{i}" for i, expr in enumerate(built.values()))}
            from (select {", ".join(aliased)} from wanted as w {" ".join(joins)}) as q
        ) as r
    """
    keys = list(built)
    return CandidateQuery(
        sql,
        # placeholders appear in the order: members (segment), known (audience), then the joins
        [params[0], *state_params, *params[1:]],
        names,
        hashed_fields + keys,
        fingerprinted is not None,
        f"w{keys.index(WIRE_ROW)}" if WIRE_ROW in keys else None,
        f"w{keys.index(WIRE_HASHES)}" if WIRE_HASHES in keys else None,
        [re.sub(r"^.* as ", "", column) for column in outer],
    )


def cannot_read(audience: Audience, exc: Exception) -> SyncFailed:
    return SyncFailed(
        f"audience {audience.name}: cannot read the members of segment {audience.segment!r} ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0][:300]}); dim_users.is_global_control and campaign_exposures come with the"
        " campaigns models"
    )


def to_candidates(query: CandidateQuery, rows: Iterable[tuple]) -> list[Candidate]:
    names, hashed_fields = query.names, query.hashed_fields
    n, h = len(names), len(names) + len(hashed_fields)
    with_fingerprint = query.fingerprinted  # the last column
    return [
        Candidate(
            row[0],
            bool(row[1]),
            dict(zip(names, row[:n], strict=True)),
            dict(zip(hashed_fields, row[n:h], strict=True)) if hashed_fields else None,
            row[h] if with_fingerprint else None,
        )
        for row in rows
    ]


def read_candidates(
    wh: Warehouse, audience: Audience, *, has_state: bool, has_suppressions: bool
) -> list[tuple[Candidate, str | None]]:
    """Segment members and the users the destination holds for the audience, each with what the decision needs
    and its skip reason (None: it may be sent): the quality gate's view of who leaves, by the same query and
    the same SQL decision that the sync stages with the destination's hashes and rows (AudienceSync.stage)."""
    query = candidate_query(wh, audience, has_state=has_state, has_suppressions=has_suppressions)
    sql = f"select *, {skip_reason_sql(audience, query)} as reason from ({query.sql}) as c order by c0"
    try:
        rows = wh.query(sql, query.params)
    except Exception as exc:
        raise cannot_read(audience, exc) from None
    return list(zip(to_candidates(query, rows), (row[-1] for row in rows), strict=True))


def skip_reason_sql(audience: Audience, query: CandidateQuery) -> str:
    """Why a candidate may not be sent (null: it may), in SQL over the columns of `query` (c0, c1, ...): the
    first that applies of no profile row, the global control group, the campaign's control group or not being
    exposed to the campaign, no consent for the channel, a suppression, none of the audience's identifiers."""
    column = {name: f"c{i}" for i, name in enumerate(query.names)}
    cases = [
        (f"not {column['in_profile']}", "missing_identifier"),
        (column["is_global_control"], "global_control"),
    ]
    if audience.campaign is not None:
        assignment = column["assignment"]
        cases += [
            (f"{assignment} = 'global_control'", "global_control"),
            (f"{assignment} = 'campaign_control'", "campaign_control"),
            (f"coalesce({assignment}, '') <> 'target'", "not_in_campaign"),
        ]
    cases += [(f"{column['consent']} is not true", "consent"), (column["suppressed"], "suppressed")]
    present = [
        f"({column[f]} is not null and cast({column[f]} as varchar) <> '')" for f in audience.identifiers if f in column
    ]
    cases.append((f"not ({' or '.join(present) or 'false'})", "missing_identifier"))
    return "case " + " ".join(f"when {condition} then '{reason}'" for condition, reason in cases) + " end"


# Columns that are text in the marts: sent as they are, without `_plain`'s type checks (a 10^6-member sync
# builds every member's fields).
TEXT_FIELDS = {"user_id", "segment_name", "email", "phone", "name", "gender", "city", "country", "platform"}
TEXT_FIELDS |= {"lifecycle_stage", "rfm_segment"}


def member_fields(audience: Audience, values: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    first = last = ""
    if "first_name" in audience.fields or "last_name" in audience.fields:
        first, _, last = str(values.get("name") or "").strip().partition(" ")
    for column in audience.fields:
        if column == "first_name":
            fields[column] = first or None
        elif column == "last_name":
            fields[column] = last.strip() or None
        elif column in TEXT_FIELDS:
            fields[column] = values.get(column)
        else:
            fields[column] = _plain(values.get(column))
    return fields


# ---- batching ----------------------------------------------------------------------------------------------


def batches(destination: Destination, members: Sequence[Member]) -> Iterator[list[Member]]:
    """Chunks capped by the audience's (or the destination's) row count and payload bytes."""
    audience = destination.audience
    max_rows = audience.batch_rows or destination.max_batch_rows
    max_bytes = audience.batch_bytes or destination.max_batch_bytes
    batch: list[Member] = []
    size = 0
    for member in members:
        member_size = destination.batch_size_bytes([member]) if max_bytes else 0
        if batch and (len(batch) >= max_rows or (max_bytes and size + member_size > max_bytes)):
            yield batch
            batch, size = [], 0
        batch.append(member)
        size += member_size
    if batch:
        yield batch


def send_splitting(send: Callable[[Sequence[Member]], BatchOutcome], members: Sequence[Member]) -> BatchOutcome:
    """Send; when the API refuses the whole request as invalid, halve until each bad record stands alone,
    so one bad address costs its own row and not its batch."""
    try:
        return send(members)
    except RejectedBatch as exc:
        if len(members) == 1:
            return BatchOutcome(rejected={members[0].user_id: str(exc)})
        middle = len(members) // 2
        left = send_splitting(send, members[:middle])
        right = send_splitting(send, members[middle:])
        return BatchOutcome(
            accepted=left.accepted + right.accepted,
            rejected={**left.rejected, **right.rejected},
            suppress={**left.suppress, **right.suppress},
            unattributed_failures=left.unattributed_failures + right.unattributed_failures,
            hashes={**left.hashes, **right.hashes},
            hashes_text={**left.hashes_text, **right.hashes_text},
        )


# ---- one audience ------------------------------------------------------------------------------------------


class AudienceSync:
    def __init__(
        self,
        wh: Warehouse,
        audience: Audience,
        run: RunContext,
        *,
        dry_run: bool,
        allow_large_change: bool,
        policy: RetryPolicy,
        sleep: Callable[[float], None],
        report: Callable[[str], None],
        full_resync: bool = False,
    ) -> None:
        self.wh = wh
        self.audience = audience
        self.run = run
        self.dry_run = dry_run
        self.allow_large_change = allow_large_change
        self.full_resync = full_resync
        self.policy = policy
        self.sleep = sleep
        self.report = report
        self.counts = AudienceCounts()
        self.kind = DESTINATIONS[audience.destination]
        self.batch_number = 0
        self.destination: Destination | None = None
        self.state: dict[str, StateRow] = {}  # what the destination holds, kept current as batches are recorded
        self.replacing: Replace | None = None  # the replace session in progress, if any
        self.pending_ids: set[str] = set()  # members a killed attempt left in flight
        self.refused: set[str] = set()  # members the destination refused in this run
        self.replace_accepted = 0  # the number of the last replace request answered in the current batch
        self.replace_first = 0  # the number the current replace batch's first request takes
        self.staged = False  # whether the candidates are in the work table (stage)

    # the destination is built lazily: a dry run or an audience with nothing to send needs no credentials
    def connect(self) -> Destination:
        if self.destination is None:
            creds = conn.resolve(self.audience.conn_id) if self.audience.conn_id else {}
            http = None
            if self.kind.uses_http:
                http = HttpClient(
                    conn.base_url(creds, self.kind.default_base_url),
                    self.kind.auth_headers(creds),
                    self.policy,
                    self.sleep,
                )
            self.destination = self.kind(self.audience, creds, http, self.run)
        return self.destination

    def log_write(self, members: Iterable[str], action: str, status: str, reason: str | None) -> Write:
        """sync_log rows for members with one decision: columns, the user id the only one that varies."""
        a = self.audience
        columns = {"audience": a.name, "destination": a.destination, "campaign_id": a.campaign, "action": action}
        columns |= {"status": status, "reason": reason, "run_id": self.run.run_id}
        columns |= {"logged_at": datetime.now(UTC).replace(tzinfo=None), "user_id": list(members)}
        return Write("sync_log", columns=columns)

    def execute(self) -> AudienceCounts:
        started = time.monotonic()
        started_at = datetime.now(UTC).replace(tzinfo=None)
        try:
            self._execute()
        except SyncFailed as exc:
            self.counts.outcome = self.counts.outcome if self.counts.outcome != "ok" else "failed"
            self.counts.error = str(exc)
        except (DestinationError, conn.MissingConnection) as exc:
            self.counts.outcome = "failed"
            self.counts.error = str(exc)
        except Exception as exc:  # an unexpected bug in one audience must not stop the others
            log.exception("audience %s: unexpected error", self.audience.name)
            self.counts.outcome = "failed"
            self.counts.error = f"audience {self.audience.name}: unexpected {type(exc).__name__} (see the task log)"
        finally:
            if self.staged:
                self.wh.query(f"drop table if exists {self.wh.work}")
            if self.destination is not None and self.destination.http is not None:
                self.counts.retried = self.destination.http.retries
        duration = time.monotonic() - started
        if not self.dry_run:
            c = self.counts
            row = (
                self.run.run_id, self.audience.name, self.audience.destination, self.audience.mode, False, c.outcome,
                c.considered, c.eligible, c.added, c.removed, c.sent, sum(c.skipped.values()),
                json.dumps(dict(sorted(c.skipped.items()))), c.failed, c.suppressed, c.retried, c.error,
                started_at, duration,
            )  # fmt: skip
            self.wh.transaction([Write("sync_runs", rows=[row])])
        log.info("audience %s: %s in %.2fs", self.audience.name, self.counts.as_dict(), duration)
        return self.counts

    def stage(self, query: CandidateQuery) -> None:
        """The candidates into the connection's temporary table `sync_work` (c0 the user id, c1 in the segment,
        ..., `reason` the skip reason): the rows the warehouse builds whole (wire_sql) stay there until their
        batch is sent, and Python reads each member's decision rather than its fields."""
        self.wire = query.wire
        self.wire_hashes = query.wire_hashes
        reason = skip_reason_sql(self.audience, query)
        self.wh.query(f"drop table if exists {self.wh.work}")
        try:
            # in user id order, as the batches go: a batch's rows then sit in a few row groups (see fetch)
            sql = f"create temporary table sync_work as select *, {reason} as reason from ({query.sql}) as c"
            self.wh.query(f"{sql} order by c0", query.params)
            self.staged = True
        except Exception as exc:
            raise cannot_read(self.audience, exc) from None

    def read_members(
        self, query: CandidateQuery
    ) -> tuple[dict[str, Member], dict[str, str], dict[str, Member], dict[str, str]]:
        """The eligible members, their fingerprints, every candidate as a Member (profiles), and the skipped with
        their reason. A member whose row and fingerprint the warehouse built is read as its id, decision and
        fingerprint only (`UNFETCHED`: its row is fetched with its batch, see fetch); the others are built in
        Python from their fields."""
        a = self.audience
        # Python builds the members the warehouse could not: no whole row, or no fingerprint
        python = f"({self.wire} is null or fp is null)" if self.wire and query.fingerprinted else "true"
        fp = "fp" if query.fingerprinted else "null"
        rows = self.wh.query(f"select c0, c1, reason, {fp}, {python} from {self.wh.work} order by c0")
        built = {}
        if any(row[4] for row in rows):
            sql = f"select {', '.join(query.columns)} from {self.wh.work} where {python} order by c0"
            built = {c.user_id: c for c in to_candidates(query, self.wh.query(sql))}
        eligible: dict[str, Member] = {}
        fingerprints: dict[str, str] = {}
        profiles: dict[str, Member] = {}
        skips: dict[str, str] = {}
        considered, skipped = 0, self.counts.skipped
        for user_id, in_segment, reason, fingerprinted, in_python in rows:
            if in_python:
                candidate = built[user_id]
                fields = member_fields(a, candidate.values)
                member = Member(user_id, fields, candidate.hashed)
            else:
                fields, member = None, Member(user_id, NO_FIELDS, UNFETCHED)
            profiles[user_id] = member
            if not in_segment:
                continue
            considered += 1
            if reason is not None:
                skips[user_id] = reason
                skipped[reason] += 1
                continue
            eligible[user_id] = member
            fingerprints[user_id] = fingerprinted or built[user_id].fingerprint or fingerprint(fields)
        self.counts.considered += considered
        return eligible, fingerprints, profiles, skips

    def fetch(self, members: Sequence[Member]) -> Sequence[Member]:
        """The members with the rows the warehouse built for them (those read as UNFETCHED), by one query."""
        wanted = [m.user_id for m in members if m.hashed is UNFETCHED]
        if not wanted:
            return members
        among, param = self.wh.among(wanted)
        sql, params = f"select c0, {self.wire}, {self.wire_hashes} from {self.wh.work} where c0 {among}", [param]
        if self.wh.target == "duckdb":
            # Redundant, but DuckDB then skips the row groups outside the range (min/max per group of the table
            # written in user id order): a batch of a replace or a diff holds neighbouring ids. (Byte order, as
            # Python's; a Postgres collation may order otherwise.)
            sql, params = f"{sql} and c0 between ? and ?", [param, min(wanted), max(wanted)]
        rows = self.wh.query(sql, params)
        wire = {uid: (row, hashes) for uid, row, hashes in rows}
        fetched = []
        for m in members:
            if m.hashed is UNFETCHED:
                row, hashes = wire[m.user_id]
                m = Member(m.user_id, m.fields, {WIRE_ROW: row, WIRE_HASHES: hashes})
            fetched.append(m)
        return fetched

    def read_state(self) -> dict[str, StateRow]:
        if not self.wh.relation_exists("sync_state"):
            return {}
        hashed = "hashes" in self.wh.columns("sync_state")  # a dry run may read a table from before the column
        extra = "hashes, stale_hashes" if hashed else "null, null"
        rows = self.wh.query(
            f"select user_id, fingerprint, synced_at, {extra} from {self.wh.table('sync_state')} where audience = ?",
            [self.audience.name],
        )
        return {row[0]: StateRow(*row[1:]) for row in rows}

    def _execute(self) -> None:
        a = self.audience
        has_state = self.wh.relation_exists("sync_state")
        has_suppressions = self.wh.relation_exists("sync_suppressions")
        # hashed destinations normalise and hash in the warehouse what it can decide (a first sync: every member)
        dialect = SqlDialect(self.wh.target)
        hash_sql = self.kind.hash_sql(a, dialect, lambda column: f"u.{column}")
        query = candidate_query(
            self.wh,
            a,
            has_state=has_state,
            has_suppressions=has_suppressions,
            hash_sql=hash_sql,
            wire_sql=lambda hashed: self.kind.wire_sql(a, dialect, hashed),
        )
        self.stage(query)
        # The members and their state are read and built with the garbage collector paused: see gc_paused.
        with gc_paused():
            self.state = self.read_state()
            pending = (
                self.wh.query(
                    f"select user_id, action, delivery_id, created_at, fingerprint from {self.wh.table('sync_pending')}"
                    " where audience = ? order by delivery_id, user_id",
                    [a.name],
                )
                if has_state
                else []
            )
            self.pending_ids = {row[0] for row in pending}
            eligible, fingerprints, profiles, skips = self.read_members(query)
            self.counts.eligible = len(eligible)
            self.profiles = profiles

        if not self.dry_run:
            self.replacing = self.open_replace()
            if pending:
                self.settle_pending(pending, eligible, profiles, fingerprints)
        replace = self.replacing is not None or self.wants_replace(eligible)
        adds, removes = self.diff(eligible, fingerprints, resync=self.full_resync and not replace)
        self.counts.to_add, self.counts.to_remove = len(adds), len(removes)
        if replace:
            # a replace sends every eligible member and drops every other member the destination holds
            self.counts.to_add = len(eligible)
        joiners = sum(1 for m in adds if m.user_id not in self.state)
        if not (has_state and self.resumed()):
            self.check_safety(len(self.state), joiners, len(removes))

        if self.dry_run:
            self.print_dry_run(adds, removes, replace)
            return
        self.log_skips(skips)
        if replace:
            self.replace(eligible, fingerprints)
            adds, removes = self.diff(eligible, fingerprints, resync=False)
            # after a replace only what changed while it was resumed; a member it failed is retried next run
            adds = [m for m in adds if m.user_id in self.state]
        unlinks = self.stale_members()
        if not adds and not removes and not unlinks:
            finish = None
        else:
            destination = self.connect()
            add_action = "send" if a.mode == "append" else "add"
            try:
                self.send_batches(add_action, batches(destination, adds), fingerprints)
                self.send_batches("unlink", batches(destination, self.stale_members()), fingerprints)
                self.send_batches("remove", batches(destination, removes), fingerprints)
            finally:
                finish = destination.finish()
        if finish is not None:
            self.counts.failed += finish.unattributed_failures + len(finish.rejected)
        self.check_failures()

    def diff(
        self, eligible: dict[str, Member], fingerprints: dict[str, str], *, resync: bool
    ) -> tuple[list[Member], list[Member]]:
        """Joiners and changed members to add (every eligible member on a full resync), leavers to remove."""
        state = self.state
        if self.audience.mode == "append":
            return [m for uid, m in eligible.items() if uid not in state], []
        adds = [
            m
            for uid, m in eligible.items()
            if resync or uid not in state or state[uid].fingerprint != fingerprints[uid]
        ]
        removes = []
        if self.audience.mode == "mirror":
            removes = [self.removal_member(uid) for uid in sorted(state) if uid not in eligible]
        return adds, removes

    def removal_member(self, user_id: str) -> Member:
        """What a removal sends: for hashed destinations the hashes the destination was sent (from sync_state, or
        from today's profile for a member synced before hashes were kept); elsewhere the profile."""
        profile = self.profiles.get(user_id) or Member(user_id, {})
        if not self.kind.hashed:
            return profile
        row = self.state.get(user_id)
        if row is not None and row.hashes:
            return Member(user_id, parse_hashes(row.hashes))
        [profile] = self.fetch([profile])
        wire = profile.hashed.get(WIRE_HASHES) if profile.hashed else None
        return Member(user_id, parse_hashes(wire) if wire is not None else self.connect().hashes(profile))

    def stale_members(self) -> list[Member]:
        """Members whose change replaced an identifier: their old hashes, to remove. A hash that is now another
        member's current identifier (an address that moved between users) is kept."""
        stale = {uid: parse_hashes(row.stale_hashes) for uid, row in self.state.items() if row.stale_hashes}
        if not stale:
            return []
        current: set[str] = set()  # `field=hash` entries, split in C: a state holds 10^6 members
        for row in self.state.values():
            if row.hashes:
                current.update(row.hashes.split(";"))
        members = []
        for uid, hashes in sorted(stale.items()):
            kept = {field: h for field, h in hashes.items() if f"{field}={h}" not in current}
            members.append(Member(uid, kept))
        return members

    def log_skips(self, skips: dict[str, str]) -> None:
        """A skip reaches sync_log when it starts or its reason changes; `sync_skips` holds who is skipped now and
        why. Skip rows older than the retention are pruned (sent and failed rows are kept: they are the audit
        trail and the campaign marts read them)."""
        a, table = self.audience, self.wh.table("sync_skips")
        before = dict(self.wh.query(f"select user_id, reason from {table} where audience = ?", [a.name]))
        changed = {uid: reason for uid, reason in skips.items() if before.get(uid) != reason}
        gone = [uid for uid in before if uid not in skips or uid in changed]
        by_reason: dict[str, list[str]] = {}
        for uid, reason in changed.items():
            by_reason.setdefault(reason, []).append(uid)
        cutoff = run_id_for(self.run.data_interval_end - timedelta(days=log_retention_days()))
        log_table = self.wh.table("sync_log")
        self.wh.transaction(
            [
                Write("sync_skips", delete_audience=a.name, ids=gone),
                Write("sync_skips", rows=[(a.name, uid, reason, self.run.run_id) for uid, reason in changed.items()]),
                *(self.log_write(ids, "skip", "skipped", reason) for reason, ids in sorted(by_reason.items())),
                Write(
                    "sync_log",
                    sql=f"delete from {log_table} where audience = ? and action = 'skip' and run_id < ?",
                    params=[a.name, cutoff],
                ),
            ]
        )

    # ---- replacing the whole audience --------------------------------------------------------------------

    def open_replace(self) -> Replace | None:
        """A replace a killed attempt left unfinished: it is resumed, whatever this run would decide."""
        if not self.wh.relation_exists("sync_replace"):
            return None
        rows = self.wh.query(
            f"select session_id, started_at, batches, sent_last, requested from {self.wh.table('sync_replace')}"
            " where audience = ? and finished_at is null order by started_at desc limit 1",
            [self.audience.name],
        )
        return Replace(*rows[0]) if rows else None

    def wants_replace(self, eligible: dict[str, Member]) -> bool:
        """A mirror to a destination that can replace is replaced on its first sync (nothing in sync_state: a new
        audience, or a state reset, while the destination may hold members from elsewhere) and on a full
        resync. Never with nothing to send: emptying an audience the sender does not know is a person's call."""
        a = self.audience
        if not (self.kind.supports_replace and a.mode == "mirror" and eligible):
            return False
        return self.full_resync or not self.state

    def replace(self, eligible: dict[str, Member], fingerprints: dict[str, str]) -> None:
        """Send every eligible member in one replace (resuming a killed one), then end it and forget the members
        the destination no longer holds (synced before T)."""
        a = self.audience
        destination = self.connect()
        if self.replacing is None:
            # T and the session id are written before the first request: a rerun continues this replace.
            started = datetime.now(UTC).replace(tzinfo=None)
            self.replacing = Replace(secrets.randbits(53), started, 0, False, 0)
            row = (a.name, self.replacing.session_id, self.run.run_id, started, 0, False, 0, None)
            self.wh.transaction([Write("sync_replace", rows=[row])])
        session = self.replacing
        for _ in range(3):  # the members, then at most two closing batches if the last one had to be split
            if session.sent_last:
                break
            sent = {uid for uid, row in self.state.items() if row.synced_at >= session.started_at}
            # a member the destination refused in this run is not offered again until the next run
            remaining = [m for uid, m in eligible.items() if uid not in sent and uid not in self.refused]
            if not remaining:
                # every member is in already, but the session still needs its last batch: one member again
                remaining = [m for uid, m in eligible.items() if uid in sent][:1]
                if not remaining:
                    raise SyncFailed(f"audience {a.name}: a replace left open has no member to close it with")
            self.send_batches("replace", batches(destination, remaining), fingerprints, total=len(eligible))
        if not session.sent_last:
            raise SyncFailed(f"audience {a.name}: the replace session could not be ended; the old audience stays")
        destination.end_replace(session.started_at)
        dropped = [uid for uid, row in self.state.items() if row.synced_at < session.started_at]
        table = self.wh.table("sync_replace")
        self.wh.transaction(
            [
                Write("sync_state", delete_audience=a.name, ids=dropped),
                Write(
                    "sync_replace",
                    sql=f"update {table} set finished_at = ? where audience = ? and session_id = ?",
                    params=[datetime.now(UTC).replace(tzinfo=None), a.name, session.session_id],
                ),
            ]
        )
        for uid in dropped:
            del self.state[uid]
        self.counts.removed += len(dropped)
        self.replacing = None

    def resumed(self) -> bool:
        """Whether an attempt of this run was killed after it started sending for the audience (it logged
        sends but wrote no sync_runs row after them). That attempt passed the safety check with the whole
        change in view, so the attempt that finishes its work is not stopped halfway by its own progress."""
        a, run_id = self.audience.name, self.run.run_id
        runs = self.wh.query(
            f"select started_at, duration_seconds from {self.wh.table('sync_runs')} where audience = ? and run_id = ?",
            [a, run_id],
        )
        last_end = max((started + timedelta(seconds=duration) for started, duration in runs), default=None)
        log_table = self.wh.table("sync_log")
        sql = f"select max(logged_at) from {log_table} where audience = ? and run_id = ? and action <> 'skip'"
        last_send = self.wh.query(sql, [a, run_id])[0][0]
        return last_send is not None and (last_end is None or last_send > last_end)

    def check_safety(self, synced: int, joiners: int, leavers: int) -> None:
        """A first sync (nothing synced yet) is not limited: it sends everything by definition."""
        a = self.audience
        if synced == 0 or self.allow_large_change:
            return
        grow, shrink = joiners / synced, leavers / synced
        if max(grow, shrink) > a.safety_limit:
            self.counts.outcome = "blocked"
            raise SyncFailed(
                f"audience {a.name}: safety limit {a.safety_limit:.0%} exceeded: the run would add {joiners} and remove"
                f" {leavers} of {synced} synced members ({grow:.0%} growth, {shrink:.0%} shrink); nothing was sent."
                " If the change is intended, rerun with --allow-large-change (REKINDLE_ALLOW_LARGE_CHANGE)"
            )

    def check_failures(self) -> None:
        attempted = self.counts.to_add + self.counts.to_remove + self.counts.settled
        if attempted and self.counts.failed / attempted > self.audience.failure_threshold:
            raise SyncFailed(
                f"audience {self.audience.name}: {self.counts.failed} of {attempted} members failed,"
                f" above the failure threshold of {self.audience.failure_threshold:.0%} (see sync_log)"
            )

    def print_dry_run(self, adds: Sequence[Member], removes: Sequence[Member], replace: bool) -> None:
        a, c = self.audience, self.counts
        verb = "send" if a.mode == "append" else "add/update"
        if replace:
            self.report(
                f"[dry run] {a.name} → {a.destination}: would replace the whole audience with its {c.eligible}"
                " eligible members (a first sync or a full resync); the lines below are the diff against sync_state"
            )
        self.report(
            f"[dry run] {a.name} → {a.destination} ({a.mode}): {c.considered} considered, {c.eligible} eligible,"
            f" would {verb} {len(adds)} and remove {len(removes)}; skipped {dict(sorted(c.skipped.items()))}"
        )
        for label, members in ((verb, adds), ("remove", removes)):
            if members:
                sample = ", ".join(hashed_id(m.user_id) for m in members[:5])
                self.report(f"[dry run]   {label}: {sample}{' …' if len(members) > 5 else ''} (sha256 of user_id)")

    # ---- sending and recording ---------------------------------------------------------------------------

    def send_batches(
        self, action: str, chunks: Iterable[list[Member]], fingerprints: dict[str, str], *, total: int = 0
    ) -> None:
        """Send the batches in order, each as send_batch does (pending rows, request, record: in a worker thread,
        one batch at a time, so the crash guarantees are send_batch's), while this thread reads the next batch's
        rows the warehouse built (fetch) and has the destination build its request (Destination.prepare: CPU only).
        That work then overlaps the batch in flight, mostly the wait for the destination's answer. A replace flags
        its last batch."""
        chunks = list(chunks)
        destination = self.connect()
        prepare = action in ("add", "send", "replace")  # removals carry stored hashes: nothing to build
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sync-{self.audience.name}") as worker:
            running: Future | None = None
            for i, chunk in enumerate(chunks):
                # the rows the warehouse built, read while the batch before waits for its answer (the connection
                # takes one statement at a time: Warehouse.lock)
                chunk = self.fetch(chunk)
                if prepare:
                    destination.prepare(chunk)
                delivery_id = delivery_id_for(action, chunk, fingerprints)
                if running is not None:
                    running.result()  # a batch goes only once the one before it is recorded (or raises)
                last = action == "replace" and i == len(chunks) - 1
                running = worker.submit(
                    self.send_batch, action, chunk, fingerprints, last=last, total=total, delivery_id=delivery_id
                )
            if running is not None:
                running.result()

    def send_batch(
        self,
        action: str,
        batch: list[Member],
        fingerprints: dict[str, str],
        *,
        last: bool = False,
        total: int = 0,
        resend: bool = False,
        delivery_id: str | None = None,
    ) -> None:
        destination = self.connect()
        a = self.audience
        self.batch_number += 1
        batch = self.fetch(batch)
        delivery_id = delivery_id or delivery_id_for(action, batch, fingerprints)
        now = datetime.now(UTC).replace(tzinfo=None)
        ids = [m.user_id for m in batch]
        # The batch that ends a replace is pending as `replace_last`: resent after a crash, it must end it again.
        pending = "replace_last" if action == "replace" and last else action
        numbered = []  # a replace batch's first request number, in the same transaction as its pending rows
        if action == "replace":
            send = self.replace_sender(batch, last, total, resend=resend)
            if self.replace_first != self.replacing.requested:
                numbered.append(self.requested_write(self.replace_first))
        else:
            send = destination.remove if action in ("remove", "unlink") else destination.add
        self.wh.transaction(
            [
                *numbered,
                # a member is pending once: a batch resent after a crash takes the place of its first try
                Write("sync_pending", delete_audience=a.name, ids=[u for u in ids if u in self.pending_ids]),
                Write(
                    "sync_pending",
                    columns={
                        "audience": a.name,
                        "user_id": ids,
                        "action": pending,
                        "fingerprint": [fingerprints.get(u) for u in ids],
                        "delivery_id": delivery_id,
                        "run_id": self.run.run_id,
                        "created_at": now,
                    },
                ),
            ]
        )
        if numbered:
            self.replacing.requested = self.replace_first
        try:
            outcome = send_splitting(send, batch)
        except AmbiguousDelivery:
            # Left pending: the next run reconciles these members with the destination before sending again.
            self.counts.failed += len(batch)
            raise
        except (DestinationError, RejectedBatch) as exc:
            self.counts.failed += len(batch)
            self.wh.transaction(
                [
                    self.clear_pending(delivery_id),
                    self.log_write(ids, action, "failed", str(exc)[:500]),
                ]
            )
            raise DestinationError(str(exc)) from None
        _crash_point("after_request", self.batch_number)
        self.record(action, batch, outcome, fingerprints, last=last, delivery_id=delivery_id)
        _crash_point("between_batches", self.batch_number)

    def replace_sender(
        self, batch: list[Member], last: bool, total: int, *, resend: bool
    ) -> Callable[[Sequence[Member]], BatchOutcome]:
        """Requests of one replace batch: each request takes the session's next batch number, written to
        `sync_replace.requested` before it goes (a batch refused as invalid is split, and its pieces are
        numbered in turn). A batch a crash left in flight is resent under the last number requested: the
        destination applies it if that request never arrived and takes it as a retry if it did, whether or not
        the batch had been split. Only the whole last batch carries the last-batch flag; when it had to be
        split, replace() ends the session with one more batch."""
        destination, session = self.connect(), self.replacing
        self.replace_flagged = False
        # (requested == batches: the batch left in flight never went, so it takes the next number after all)
        in_flight = resend and session.requested > session.batches
        number = [session.requested if in_flight else session.batches + 1]
        self.replace_first = number[0]  # send_batch writes it with the batch's pending rows
        self.replace_accepted = 0

        def send(members: Sequence[Member]) -> BatchOutcome:
            flagged = last and len(members) == len(batch)
            seq = number[0]
            if seq != session.requested:  # a piece of a split batch
                self.wh.transaction([self.requested_write(seq)])
                session.requested = seq
            outcome = destination.replace(
                members, ReplaceBatch(session.session_id, session.started_at, seq, flagged, total)
            )
            number[0] += 1  # only an answered request spends its number: a refused one (400) is not applied
            self.replace_accepted = seq
            self.replace_flagged = self.replace_flagged or flagged
            return outcome

        return send

    def requested_write(self, seq: int) -> Write:
        """sync_replace.requested: the number of the replace request about to go."""
        sql = f"update {self.wh.table('sync_replace')} set requested = ? where audience = ? and session_id = ?"
        return Write("sync_replace", sql=sql, params=[seq, self.audience.name, self.replacing.session_id])

    def clear_pending(self, delivery_id: str) -> Write:
        table = self.wh.table("sync_pending")
        sql = f"delete from {table} where audience = ? and delivery_id = ?"
        return Write("sync_pending", sql=sql, params=[self.audience.name, delivery_id])

    def record(
        self,
        action: str,
        batch: Sequence[Member],
        outcome: BatchOutcome,
        fingerprints: dict[str, str],
        reason: str | None = None,
        *,
        last: bool = False,
        delivery_id: str | None = None,
    ) -> None:
        a = self.audience
        now = datetime.now(UTC).replace(tzinfo=None)
        ids = [m.user_id for m in batch]
        answered = set(outcome.accepted)
        accepted = [uid for uid in ids if uid in answered]
        # a member the destination neither accepted, rejected nor suppressed is a failure, never silence
        unanswered = [
            uid for uid in ids if uid not in answered and uid not in outcome.rejected and uid not in outcome.suppress
        ]
        outcome = BatchOutcome(
            accepted=accepted,
            rejected={
                **outcome.rejected,
                **{uid: "the destination did not answer for this record" for uid in unanswered},
            },
            suppress=outcome.suppress,
            unattributed_failures=outcome.unattributed_failures,
            hashes=outcome.hashes,
            hashes_text=outcome.hashes_text,
        )
        # by the batch's id when it has one: one statement instead of a lookup per member
        pending = (
            self.clear_pending(delivery_id) if delivery_id else Write("sync_pending", delete_audience=a.name, ids=ids)
        )
        writes = [pending]
        log_action, log_reason = action, reason
        if action == "remove":
            writes.append(Write("sync_state", delete_audience=a.name, ids=accepted))
            self.counts.removed += len(accepted)
            for uid in accepted:
                self.state.pop(uid, None)
        elif action == "unlink":
            # the member's old identifiers left the destination; the member stays
            writes.append(Write("sync_state", delete_audience=a.name, ids=accepted, set_null="stale_hashes"))
            log_action, log_reason = "remove", reason or "identifier_changed"
            for uid in accepted:
                if uid in self.state:
                    self.state[uid] = self.state[uid]._replace(stale_hashes=None)
        else:
            # only members already held have a row to replace: a first sync deletes nothing
            writes.append(Write("sync_state", delete_audience=a.name, ids=[u for u in accepted if u in self.state]))
            added = len(accepted)
            if action == "replace":  # a member sent again in the same session (to close it) is not added twice
                since = self.replacing.started_at
                added -= sum(1 for u in accepted if u in self.state and self.state[u].synced_at >= since)
            state, as_text = self.state, outcome.hashes_text
            sent_fingerprints, sent_hashes, stale_list = [], [], []
            for uid in accepted:
                hashes = as_text.get(uid)
                if hashes is None:
                    sent = outcome.hashes.get(uid)
                    hashes = format_hashes(sent) if sent else None
                hashes = hashes or None
                # A replace drops every old identifier with the old audience; an add leaves the destination
                # holding the hashes it replaced until they are removed ("unlink").
                before = None if action == "replace" else state.get(uid)
                stale = None if before is None else stale_hashes(before, parse_hashes(hashes))
                state[uid] = StateRow(fingerprints[uid], now, hashes, stale)
                sent_fingerprints.append(state[uid].fingerprint)
                sent_hashes.append(hashes)
                stale_list.append(stale)
            columns = {"audience": a.name, "user_id": accepted, "fingerprint": sent_fingerprints, "synced_at": now}
            columns |= {"run_id": self.run.run_id, "hashes": sent_hashes, "stale_hashes": stale_list}
            writes.append(Write("sync_state", columns=columns))
            if action == "send":
                self.counts.sent += added
            else:
                self.counts.added += added
            if action == "replace":
                session = self.replacing
                session.batches = max(session.batches, self.replace_accepted)
                session.sent_last = session.sent_last or self.replace_flagged
                table = self.wh.table("sync_replace")
                writes.append(
                    Write(
                        "sync_replace",
                        sql=f"update {table} set batches = ?, sent_last = ? where audience = ? and session_id = ?",
                        params=[session.batches, session.sent_last, a.name, session.session_id],
                    )
                )
        writes.append(self.log_write(accepted, log_action, "sent", log_reason))
        self.refused.update(outcome.rejected)
        for uid, why in sorted(outcome.rejected.items()):
            writes.append(self.log_write([uid], log_action, "failed", why[:500]))
        if outcome.suppress:
            suppressed = sorted(outcome.suppress)
            placeholders = ", ".join("?" * len(suppressed))
            table = self.wh.table("sync_suppressions")
            writes += [
                Write(
                    "sync_suppressions",
                    sql=f"delete from {table} where channel = ? and user_id in ({placeholders})",
                    params=[a.channel, *suppressed],
                ),
                Write(
                    "sync_suppressions",
                    rows=[(a.channel, uid, outcome.suppress[uid], a.destination, a.name, now) for uid in suppressed],
                ),
            ]
            for uid in suppressed:
                reason_text = f"suppressed: {outcome.suppress[uid]}"
                writes.append(self.log_write([uid], action, "skipped", reason_text))
        self.wh.transaction(writes)
        self.counts.failed += len(outcome.rejected) + outcome.unattributed_failures
        self.counts.suppressed += len(outcome.suppress)
        if outcome.unattributed_failures:
            log.warning(
                "audience %s: %d records of a batch of %d failed inside an accepted request (not said which)",
                a.name,
                outcome.unattributed_failures,
                len(batch),
            )

    def record_unknown(self, action: str, members: Sequence[Member], fingerprints: dict[str, str]) -> None:
        a = self.audience
        now = datetime.now(UTC).replace(tzinfo=None)
        ids = [m.user_id for m in members]
        for uid in ids:
            self.state[uid] = StateRow(fingerprints[uid], now, None, None)
        self.wh.transaction(
            [
                Write("sync_pending", delete_audience=a.name, ids=ids),
                Write("sync_state", delete_audience=a.name, ids=ids),
                Write(
                    "sync_state",
                    rows=[(a.name, uid, fingerprints[uid], now, self.run.run_id, None, None) for uid in ids],
                ),
                self.log_write(ids, action, "failed", "unknown_after_crash"),
            ]
        )
        self.counts.failed += len(ids)

    def settle_pending(
        self,
        pending: list[tuple],
        eligible: dict[str, Member],
        profiles: dict[str, Member],
        fingerprints: dict[str, str],
    ) -> None:
        """Members a crashed run left in flight, settled before anything else is sent (self.state follows)."""
        a = self.audience
        destination = self.connect()
        groups: dict[tuple[str, str], list[str]] = {}
        sent_fingerprints: dict[str, str] = {}
        for user_id, action, delivery_id, _, sent_fingerprint in pending:
            groups.setdefault((delivery_id, action), []).append(user_id)
            if sent_fingerprint is not None:
                sent_fingerprints[user_id] = sent_fingerprint
        # reconciliation looks for deliveries from the oldest request left in flight onwards
        destination.pending_since = min(row[3] for row in pending)
        log.warning("audience %s: settling %d members a previous run left in flight", a.name, len(pending))
        for (_, action), ids in sorted(groups.items(), key=lambda group: not group[0][1].startswith("replace")):
            if action.startswith("replace"):
                if self.replacing is None:  # the replace ended meanwhile: nothing of it is in flight
                    self.wh.transaction([Write("sync_pending", delete_audience=a.name, ids=ids)])
                    continue
                # The same members under the same batch number: a destination that received it takes it as a
                # retry and keeps what came first, so the state records what was sent then; if that differs from
                # today's, the diff after the replace sends the change.
                members = [eligible.get(uid) or profiles.get(uid) or Member(uid, {}) for uid in ids]
                self.counts.settled += len(members)
                sent = {uid: sent_fingerprints.get(uid) or fingerprints.get(uid) or "" for uid in ids}
                self.send_batch(
                    "replace", members, sent, last=action == "replace_last", total=len(eligible), resend=True
                )
                continue
            if action in ("remove", "unlink"):
                members = [self.removal_member(uid) for uid in ids]
                if action == "unlink":
                    members = [
                        Member(uid, parse_hashes(self.state[uid].stale_hashes))
                        for uid in ids
                        if uid in self.state and self.state[uid].stale_hashes
                    ]
            else:
                # a member who left meanwhile or is no longer eligible is not re-sent; the diff removes it if held
                members = [eligible[uid] for uid in ids if uid in eligible]
            gone = sorted(set(ids) - {m.user_id for m in members})
            if gone:
                self.wh.transaction([Write("sync_pending", delete_audience=a.name, ids=gone)])
            if not members:
                continue
            self.counts.settled += len(members)
            if destination.idempotent:
                # the same members in the same batch: the same key, file name or idempotency id as before
                self.send_batch(action, members, fingerprints)
                continue
            delivered = destination.reconcile(members)
            if delivered is None:
                # The API cannot tell whether these were delivered: never resend (a second SMS is worse than a
                # missing one); hold them as sent in sync_state and log them failed with the reason.
                self.record_unknown(action, members, fingerprints)
                continue
            confirmed = [m for m in members if m.user_id in delivered]
            self.record(
                action,
                confirmed,
                BatchOutcome(accepted=[m.user_id for m in confirmed]),
                fingerprints,
                reason="reconciled_after_crash",
            )
            unconfirmed = [m for m in members if m.user_id not in delivered]
            if unconfirmed:
                self.send_batch(action, unconfirmed, fingerprints)


# ---- entry point -------------------------------------------------------------------------------------------


def chosen_for(audience: str, override: bool | Iterable[str], variable: str) -> bool:
    """A per-run override: an argument (True, or audience names), or an environment variable (`all` or
    comma-separated audience names) for a DAG run triggered with it."""
    if override is True:
        return True
    names = set() if override is False else set(override)
    names |= {n.strip() for n in os.environ.get(variable, "").split(",") if n.strip()}
    return "all" in names or audience in names


def large_change_allowed(audience: str, override: bool | Iterable[str]) -> bool:
    """--allow-large-change or REKINDLE_ALLOW_LARGE_CHANGE."""
    return chosen_for(audience, override, "REKINDLE_ALLOW_LARGE_CHANGE")


def sync_audiences(
    settings: Settings,
    data_interval_start: datetime,
    data_interval_end: datetime,
    *,
    dry_run: bool = False,
    allow_large_change: bool | Iterable[str] = False,
    full_resync: bool | Iterable[str] = False,
    audiences: Iterable[str] | None = None,
    config: Path = DEFAULT_PATH,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    report: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Sync every audience (or the named ones) for the data interval; counts per audience.

    Every audience runs even when an earlier one fails; SyncFailed is raised at the end, naming each
    audience that exceeded its failure threshold or safety limit or whose destination failed.
    """
    chosen = load_audiences(config)
    if audiences is not None:
        wanted = set(audiences)
        unknown = sorted(wanted - {a.name for a in chosen})
        if unknown:
            raise ValueError(f"{config}: no audience named {unknown}")
        chosen = [a for a in chosen if a.name in wanted]
    run = RunContext(run_id_for(data_interval_end), data_interval_start, data_interval_end, settings.out)
    results: dict[str, dict[str, Any]] = {}
    with Warehouse(settings, read_only=dry_run and settings.target == "duckdb") as wh:
        if not dry_run:
            wh.ensure_tables()
        for audience in chosen:
            sync = AudienceSync(
                wh,
                audience,
                run,
                dry_run=dry_run,
                allow_large_change=large_change_allowed(audience.name, allow_large_change),
                full_resync=chosen_for(audience.name, full_resync, "REKINDLE_FULL_RESYNC"),
                policy=policy or RetryPolicy(),
                sleep=sleep,
                report=report,
            )
            results[audience.name] = sync.execute().as_dict()
    failed = {name: r["error"] for name, r in results.items() if r["outcome"] != "ok"}
    if failed:
        raise SyncFailed("; ".join(f"{error}" for error in failed.values()))
    return results
