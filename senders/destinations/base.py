"""The one small interface every destination implements, and what the engine hands it.

A destination only speaks its API: it turns members into requests and answers into a `BatchOutcome`.
Choosing who is sent, diffing, batching, retries, the ledger and the logs are the engine's
(`senders/sync.py`), so a new destination is one file here plus one line in the registry.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

if TYPE_CHECKING:
    from senders.audiences import Audience
    from senders.http import HttpClient
    from senders.normalise import SqlDialect


# Keys of Member.hashed that hold a whole member's request row rather than one field's hash (`Destination.wire_sql`)
WIRE_ROW = "\x00row"  # the member's row of the request, as JSON text
WIRE_HASHES = "\x00hashes"  # the identifier hashes the row sends, as sync_state.hashes keeps them (format_hashes)


class Member(NamedTuple):
    """One audience member as it leaves the warehouse (fields already chosen by the audience). A NamedTuple
    rather than a frozen dataclass: a first sync builds 10^6 of them, and a tuple is four times cheaper."""

    user_id: str
    fields: Mapping[str, Any]
    # Hashed destinations: what the warehouse already normalised and hashed (`Destination.hash_sql`), field ->
    # hex SHA-256 ('' for a blank or refused value, None where Python must decide); None when not computed.
    hashed: Mapping[str, str | None] | None = None


@dataclass
class BatchOutcome:
    accepted: list[str] = field(default_factory=list)  # user_ids the destination accepted
    rejected: dict[str, str] = field(default_factory=dict)  # user_id -> reason (permanent, per record)
    suppress: dict[str, str] = field(default_factory=dict)  # user_id -> reason (opt-out, invalid number)
    unattributed_failures: int = 0  # e.g. Meta num_invalid_entries inside a 200
    # user_id -> the identifier hashes sent (hashed destinations): what sync_state keeps for later removals
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)
    # the same as sync_state text (`email=<sha256>;phone=<sha256>`, '' for none), where the warehouse built it
    # (WIRE_HASHES); a member is in `hashes` or here
    hashes_text: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplaceBatch:
    """Where a batch stands in a replace of the whole audience (senders/sync.py, `sync_replace`).
    `started_at` is T, noted before the first request and kept across reruns; naive UTC."""

    session_id: int
    started_at: datetime
    batch_seq: int
    last: bool
    estimated_total: int


class RejectedBatch(Exception):
    """The API refused the whole request as invalid (HTTP 400/422): the engine splits the batch."""


class DestinationError(Exception):
    """The destination cannot take this batch now: auth, not found, or retries exhausted."""


class AmbiguousDelivery(DestinationError):
    """A non-idempotent request may or may not have been accepted (timeout or dropped connection after
    sending): resending blindly could deliver twice, so the caller must reconcile first."""


@dataclass(frozen=True)
class RunContext:
    """The run a destination writes for. `run_id` derives from the data interval, so a rerun of the same
    interval addresses the same files, keys and idempotency ids as the first attempt."""

    run_id: str
    data_interval_start: datetime
    data_interval_end: datetime
    out: Path


def batch_digest(action: str, members: Sequence[Member]) -> str:
    """A stable id for a batch's content: the same members with the same fields give the same id, which
    makes run-addressed keys (S3, files) and webhook ids repeat exactly when a crashed batch is re-sent."""
    # One join rather than JSON per member: this runs for every member sent (10^6 on a first sync).
    parts = [action]
    for member in sorted(members, key=lambda m: m.user_id):
        parts.append(member.user_id)
        parts.extend(f"{k}\x1f{'' if v is None else v}\x1f{v is None:d}" for k, v in sorted(member.fields.items()))
    return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()


class Destination(ABC):
    kind: ClassVar[str]  # registry key, e.g. "sendgrid"
    max_batch_rows: ClassVar[int]  # the strictest documented cap
    max_batch_bytes: ClassVar[int | None] = None
    supports_remove: ClassVar[bool] = False
    # Which modes make sense: append-only channels (SMS) cannot mirror.
    modes: ClassVar[tuple[str, ...]] = ("mirror", "upsert", "append")
    # The consent channel used when the audience names none (see senders/audiences.yml).
    default_channel: ClassVar[str] = "email"
    # Options the audience must give under `options:` (e.g. SendGrid's list_id) and those it may give.
    required_options: ClassVar[tuple[str, ...]] = ()
    optional_options: ClassVar[tuple[str, ...]] = ()
    # Identifier fields the destination can match on; the audience's `identifiers` must come from these.
    identifier_fields: ClassVar[tuple[str, ...]] = ("user_id", "email", "phone")
    # Re-sending an accepted batch changes nothing at the destination (upserts, attributes, keyed writes).
    # When False, a batch left pending by a crash is reconciled (`reconcile`) or marked unknown, never resent.
    idempotent: ClassVar[bool] = True
    # Identifiers leave as SHA-256 hashes (Meta, Google): `add` reports the hashes it sent (BatchOutcome.hashes),
    # sync_state keeps them, and `remove` is handed members whose fields are those hashes (`{"email": sha256}`),
    # so a leaver or a changed address is removed by what the destination holds, not by today's profile.
    hashed: ClassVar[bool] = False
    # Can replace the whole audience without emptying it meanwhile (`replace`, `end_replace`).
    supports_replace: ClassVar[bool] = False
    # Whether the destination talks HTTP (the engine then builds an HttpClient from the connection).
    uses_http: ClassVar[bool] = True
    default_base_url: ClassVar[str] = ""

    def __init__(
        self, audience: Audience, credentials: Mapping[str, str], http: HttpClient | None, run: RunContext
    ) -> None:
        self.audience = audience
        self.credentials = credentials
        self.http = http
        self.run = run
        # Set by the engine before `reconcile`: when the oldest request left in flight was made (UTC).
        self.pending_since: datetime | None = None

    @classmethod
    def check_audience(cls, audience: Audience) -> str | None:
        """A destination-specific problem with the audience's configuration, or None."""
        return None

    @classmethod
    def auth_headers(cls, credentials: Mapping[str, str]) -> dict[str, str]:
        """Headers every request carries; built from the connection, never logged."""
        return {}

    @classmethod
    def hash_sql(cls, audience: Audience, sql: SqlDialect, column: Callable[[str], str]) -> dict[str, str]:
        """Hashed destinations: SQL that normalises and hashes fields in the warehouse, field -> expression over
        `column(name)` of dim_users, giving what `add` would send or NULL where Python must decide (see
        senders/normalise.py); the engine hands the results over as `Member.hashed`. {}: nothing in SQL."""
        return {}

    @classmethod
    def wire_sql(cls, audience: Audience, sql: SqlDialect, hashed: Callable[[str], str | None]) -> dict[str, str]:
        """Hashed destinations: SQL over the columns of `hash_sql` (`hashed(field)` names the column holding the
        field's hash, None for a field without one; `hashed("user_id")` the user id) giving a member's whole request
        row (WIRE_ROW) and its identifier hashes (WIRE_HASHES), or NULL where Python must build them; handed over in
        `Member.hashed` under those keys (and, where WIRE_ROW is not NULL, instead of the fields' hashes, which
        Python then does not need). A first sync of 10^6 members then builds no row in Python. {}: nothing in SQL."""
        return {}

    def prepare(self, members: Sequence[Member]) -> None:
        """Optional: build the request for `members` ahead of time (CPU only: no I/O, no warehouse), so that the
        engine can do it while the previous batch's request is in flight; `add`/`replace` then use it when
        handed the same list object. Runs in another thread than the request: it must not touch what a
        request in flight uses."""
        return None

    def batch_size_bytes(self, members: Sequence[Member]) -> int:
        """Payload size for byte-capped batching (JSON of the fields, a close upper bound for most APIs)."""
        return sum(len(json.dumps(dict(m.fields), default=str)) + 2 for m in members)

    @abstractmethod
    def add(self, members: Sequence[Member]) -> BatchOutcome: ...

    def remove(self, members: Sequence[Member]) -> BatchOutcome:
        raise NotImplementedError(f"{self.kind} cannot remove members")

    def hashes(self, member: Member) -> dict[str, str]:
        """Hashed destinations: the identifier hashes `add` would send for this member (field -> sha256)."""
        return {}

    def replace(self, members: Sequence[Member], batch: ReplaceBatch) -> BatchOutcome:
        """Send one batch of a replace; the audience becomes exactly the replace's members once it ends."""
        raise NotImplementedError(f"{self.kind} cannot replace an audience")

    def end_replace(self, started_at: datetime) -> None:
        """After the last batch: whatever ends the replace (Google: remove all members last added before T).
        Meta needs nothing: its last batch carries `last_batch_flag`."""
        return None

    def reconcile(self, members: Sequence[Member]) -> set[str] | None:
        """For non-idempotent destinations: which of these pending members did the destination already
        receive (since `pending_since`)? None means the API offers no way to tell."""
        return None

    def finish(self) -> BatchOutcome | None:
        """Called once after the last batch (poll asynchronous jobs, close a session). May return failures
        discovered late, e.g. SendGrid's errored_count, as unattributed failures."""
        return None
