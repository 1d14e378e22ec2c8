"""A local Meta Marketing API (Custom Audience users) that keeps the documented contract.

Contract (../shared/reference/destinations.md, Marketing API "Custom Audience Users" and Graph API errors):
- `POST /v{N}/{audience_id}/users` adds, `DELETE /v{N}/{audience_id}/users` removes,
  `POST /v{N}/{audience_id}/usersreplace` replaces in a session. `access_token` as a query or form parameter
  (or a Bearer header); a wrong token is Graph's 400 OAuthException code 190. Graph's error body is
  `{"error":{"message","type","code","error_subcode","fbtrace_id"}}`.
- `payload` (a JSON string in the form or query, or an object in a JSON body):
  `{"schema":["EMAIL","PHONE",...],"data":[["<sha256>",...],...]}` or a single key
  (`"schema":"EMAIL_SHA256","data":["<sha256>",...]`). At most 10,000 rows a request (else code 100).
  Hashed keys must be 64 lowercase hex characters; a row with a malformed value is not applied and counted in
  `num_invalid_entries` (a partial failure inside a 200), with `invalid_entry_samples`.
- `session={"session_id","batch_seq","last_batch_flag","estimated_num_total"}`; required on usersreplace, with
  all four keys (`session_id` an integer, `batch_seq` counting from 1, `estimated_num_total` the rows the whole
  session will send). A replace session makes the audience exactly the union of its batches once the batch
  with `last_batch_flag: true` arrives; until then the audience keeps its old members (never empty mid-sync).
  Batches come in order: a session opens with batch 1 and each new batch is the next number; a batch number
  already received is a retry and changes nothing (so is a retried batch of a session that has ended); a gap
  is refused (code 100). A second replace session while one is open is refused (code 2650), and so are
  `/users` adds and removals while a replace is in progress (code 2650): the replace would overwrite them.
- Answer `{"audience_id","session_id","num_received","num_invalid_entries","invalid_entry_samples"}`.
- Throttling is Graph's HTTP 400 with code 80004 (`throttle_next`) and an `X-Business-Use-Case-Usage` header
  giving `estimated_time_to_regain_access` (minutes).

State for assertions: `audience_members(audience_id, key="EMAIL")` (set of hashes), `audience_rows(...)`,
`rows_received` (rows of accepted requests by operation: add, remove, replace).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .base import FakeServer, RecordedRequest, Reply, bearer_token

MAX_ROWS = 10_000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA256_COLUMN = re.compile(r"(?:[0-9a-f]{64})?(?:\n(?:[0-9a-f]{64})?)*")  # values joined by newlines
# Keys Meta expects hashed, and keys it takes as they are (Meta's documented schema keys).
HASHED_KEYS = {"EMAIL", "PHONE", "FN", "LN", "FI", "CT", "ST", "ZIP", "COUNTRY", "DOBY", "DOBM", "DOBD", "GEN"}
PLAIN_KEYS = {"EXTERN_ID", "MADID", "PAGEUID", "LOOKALIKE_VALUE"}
# Keys that single out one person; the others (names, places, birth dates) only narrow a match.
PERSONAL_KEYS = {"EMAIL", "PHONE", "MADID", "EXTERN_ID", "PAGEUID"}
SINGLE_KEY_SCHEMAS = {"EMAIL_SHA256": "EMAIL", "PHONE_SHA256": "PHONE", "MOBILE_ADVERTISER_ID": "MADID"}


def graph_error(code: int, message: str, status: int = 400, subcode: int | None = None, **extra: Any) -> Reply:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": secrets.token_urlsafe(12),
        **extra,
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return Reply(status, {"error": error})


RowKey = tuple[tuple[str, str], ...]


@dataclass
class ReplaceSession:
    session_id: int
    rows: set[RowKey] = field(default_factory=set)
    batches: set[int] = field(default_factory=set)
    started_at: float = field(default_factory=time.time)


@dataclass
class Audience:
    """Rows as sorted (key, value) pairs (a repeated row is one member), with an index from each personal
    identifier to its rows, so adds and removals cost what they carry, not the audience's size, and 10^6
    members (the bench) fit in about a kilobyte each."""

    id: str
    rows: set[RowKey] = field(default_factory=set)
    index: dict[tuple[str, str], list[RowKey]] = field(default_factory=dict)
    indexed: bool = True  # whether `index` covers `rows` (a replace defers it to the first removal)
    replace: ReplaceSession | None = None
    ended_sessions: dict[int, set[int]] = field(default_factory=dict)  # replace session id -> its batch_seqs

    def add(self, key: RowKey) -> None:
        if key in self.rows:
            return
        self.rows.add(key)
        if self.indexed:
            self._index(key)

    def _index(self, key: RowKey) -> None:
        for pair in key:
            if pair[1] and pair[0] in PERSONAL_KEYS:
                self.index.setdefault(pair, []).append(key)

    def discard(self, key: RowKey) -> None:
        if key not in self.rows:
            return
        self.rows.discard(key)
        if not self.indexed:
            return
        for pair in key:
            if pair[1] and pair[0] in PERSONAL_KEYS:
                keys = self.index[pair]
                keys.remove(key)
                if not keys:
                    del self.index[pair]

    def reset(self, rows: set[RowKey]) -> None:
        """The rows a replace ended with. The index waits for the first removal that needs it (ensure_index):
        a replace of 10^6 rows would otherwise end with a pass over all of them while the sender waits."""
        self.rows, self.index, self.indexed = set(rows), {}, False

    def ensure_index(self) -> None:
        if not self.indexed:
            self.index = {}
            for key in self.rows:
                self._index(key)
            self.indexed = True


class FakeMeta(FakeServer):
    vendor = "Meta"

    def __init__(self, access_token: str = "meta-test-token") -> None:
        super().__init__()
        self.access_token = access_token
        self.audiences: dict[str, Audience] = {}
        self._throttles = 0
        self._invalid_predicates: list[Callable[[list[Any]], bool]] = []
        self.rows_received: Counter[str] = Counter()  # rows of accepted requests, by add / remove / replace

    # ---- setup and assertions --------------------------------------------------------------------------

    def create_audience(self) -> str:
        with self.lock:
            audience_id = str(23800000000000000 + len(self.audiences) + 1)
            self.audiences[audience_id] = Audience(audience_id)
            return audience_id

    def audience_rows(self, audience_id: str) -> list[dict[str, str]]:
        with self.lock:
            return [dict(r) for r in self.audiences[audience_id].rows]

    def audience_members(self, audience_id: str, key: str = "EMAIL") -> set[str]:
        """The hashes under `key` of the audience's current members."""
        with self.lock:
            return {v for row in self.audiences[audience_id].rows for k, v in row if k == key and v}

    def invalid_rows_for(self, predicate: Callable[[list[Any]], bool]) -> None:
        """Rows matching `predicate` (as received: one value per schema key) are well-formed but unusable:
        counted in `num_invalid_entries` inside the 200 and not applied, as Meta does for hashes it rejects."""
        with self.lock:
            self._invalid_predicates.append(predicate)

    def throttle_next(self, times: int = 1, regain_minutes: int = 1) -> None:
        """Answer the next `times` requests as Meta does when rate limited: HTTP 400, code 80004."""
        with self.lock:
            self._throttles += times
            self._regain_minutes = regain_minutes

    # ---- base hooks ------------------------------------------------------------------------------------

    def fault_reply(self, status: int) -> Reply:
        if status == 429:
            return self._throttled()
        if status >= 500:
            return graph_error(2, "An unexpected error has occurred. Please retry your request later.", status)
        if status == 401:
            return graph_error(190, "Invalid OAuth access token - Cannot parse access token", 401)
        return graph_error(100, "Invalid parameter", status)

    def _throttled(self, status: int = 429) -> Reply:
        usage = {
            "0": [
                {
                    "type": "custom_audience",
                    "call_count": 100,
                    "total_cputime": 20,
                    "total_time": 20,
                    "estimated_time_to_regain_access": getattr(self, "_regain_minutes", 1),
                }
            ]
        }
        reply = graph_error(
            80004,
            "There have been too many calls to this ad-account. Wait a bit and try again.",
            status,
            subcode=2446079,
            is_transient=True,
        )
        reply.headers["X-Business-Use-Case-Usage"] = json.dumps(usage)
        return reply

    # ---- routes ------------------------------------------------------------------------------------------

    def route(self, request: RecordedRequest) -> Reply:
        if self._throttles:
            self._throttles -= 1
            return self._throttled(400)
        params = self._params(request)
        token = params.get("access_token") or bearer_token(request)
        if token != self.access_token:
            return graph_error(190, "Invalid OAuth access token - Cannot parse access token")
        m = re.fullmatch(r"/v\d+\.\d+/([^/]+)/(users|usersreplace)", request.path)
        if m is None:
            return graph_error(100, "Unknown path components", subcode=33)
        audience = self.audiences.get(m.group(1))
        if audience is None:
            return graph_error(
                100,
                f"Unsupported request. Object with ID '{m.group(1)}' does not exist, cannot be loaded due to "
                "missing permissions, or does not support this operation.",
                subcode=33,
            )
        operation = {("users", "POST"): "add", ("users", "DELETE"): "remove", ("usersreplace", "POST"): "replace"}
        op = operation.get((m.group(2), request.method))
        if op is None:
            return graph_error(100, "Unsupported method for this edge")
        try:
            schema, rows = self._payload(params.get("payload"))
            session = self._session(params.get("session"), required=op == "replace")
        except ValueError as exc:
            return graph_error(100, f"(#100) {exc}")
        if self.rejected(rows):
            return graph_error(100, "(#100) Invalid parameter: the payload holds a record Meta cannot accept")
        valid, samples = [], {}
        # each row becomes its key (sorted (schema key, value) pairs) directly: the bench sends 10^6 rows, and a
        # fake that is slow to answer would be measured as the sender's time
        order = sorted(range(len(schema)), key=schema.__getitem__)
        hashed = [i for i, key in enumerate(schema) if key in HASHED_KEYS]
        predicates = self._invalid_predicates
        well_formed = self._hashes_well_formed(rows, hashed)
        for row in rows:
            # the whole check per row only where the batch-wide one cannot vouch for it (same verdicts)
            problem = None if well_formed and any(row) else self._row_problem(schema, hashed, row)
            if problem is None and predicates and any(p(row) for p in predicates):
                problem = "the entry could not be used"
            if problem is None:
                valid.append(tuple([(schema[i], row[i]) for i in order]))
            elif len(samples) < 10:
                samples[str(row[0])] = problem
        invalid = len(rows) - len(valid)
        if op == "replace":
            reply = self._replace(audience, session, valid)
            if reply is not None:
                return reply
        elif audience.replace is not None:
            return graph_error(
                2650, "Failed to update the custom audience: a replace session is in progress", subcode=1870145
            )
        elif op == "add":
            self._add(audience, valid)
        else:
            self._remove(audience, valid)
        self.rows_received[op] += len(rows)
        answer: dict[str, Any] = {
            "audience_id": audience.id,
            "session_id": str(session["session_id"]) if session else str(secrets.randbits(53)),
            "num_received": len(rows),
            "num_invalid_entries": invalid,
            "invalid_entry_samples": samples,
        }
        return Reply(200, answer)

    @staticmethod
    def _params(request: RecordedRequest) -> dict[str, Any]:
        params: dict[str, Any] = {k: v[0] for k, v in request.query.items()}
        content_type = request.headers.get("content-type", "")
        if "application/json" in content_type and request.body:
            try:
                body = json.loads(request.body)
            except json.JSONDecodeError:
                body = None
            if isinstance(body, dict):
                params.update(body)
        elif request.body:
            params.update({k: v[0] for k, v in request.form().items()})
        return params

    @staticmethod
    def _payload(raw: Any) -> tuple[list[str], list[list[Any]]]:
        if raw is None:
            raise ValueError("The parameter payload is required")
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raise ValueError("payload must be a JSON object") from None
        if not isinstance(raw, dict):
            raise ValueError("payload must be a JSON object")
        schema, data = raw.get("schema"), raw.get("data")
        if not isinstance(data, list) or not data:
            raise ValueError("payload.data must be a non-empty array")
        if len(data) > MAX_ROWS:
            raise ValueError(f"Too many users in one request: at most {MAX_ROWS} rows are allowed")
        if isinstance(schema, str):
            key = SINGLE_KEY_SCHEMAS.get(schema, schema)
            if key not in HASHED_KEYS | PLAIN_KEYS:
                raise ValueError(f"Invalid schema {schema!r}")
            return [key], [[value] for value in data]
        if not isinstance(schema, list) or not schema:
            raise ValueError("payload.schema must be a key or a non-empty array of keys")
        unknown = [k for k in schema if k not in HASHED_KEYS | PLAIN_KEYS]
        if unknown:
            raise ValueError(f"Invalid schema keys: {unknown}")
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(schema):
                raise ValueError(f"payload.data[{i}] must be an array with one value per schema key")
        return list(schema), data

    @staticmethod
    def _session(raw: Any, *, required: bool) -> dict[str, Any] | None:
        if raw is None:
            if required:
                raise ValueError("The parameter session is required")
            return None
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raise ValueError("session must be a JSON object") from None

        def whole(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        if not isinstance(raw, dict) or not whole(raw.get("session_id")):
            raise ValueError("session.session_id must be an integer")
        if not whole(raw.get("batch_seq")) or raw["batch_seq"] < 1:
            raise ValueError("session.batch_seq must be an integer from 1")
        if not isinstance(raw.get("last_batch_flag"), bool):
            raise ValueError("session.last_batch_flag must be a boolean")
        if not whole(raw.get("estimated_num_total")) or raw["estimated_num_total"] < 0:
            raise ValueError("session.estimated_num_total must be a whole number")
        return raw

    @staticmethod
    def _hashes_well_formed(rows: list[list[Any]], hashed: list[int]) -> bool:
        """Whether every hashed value of every row is '' or 64 lowercase hex characters: _row_problem's check, one
        regular expression over each column (10^6 rows reach the bench's fake). False when it cannot tell."""
        for i in hashed:
            try:
                column = "\n".join([row[i] for row in rows])
            except TypeError:  # a value that is not a string (None): checked row by row
                return False
            if column.count("\n") != len(rows) - 1 or not _SHA256_COLUMN.fullmatch(column):
                return False
        return True

    @staticmethod
    def _row_problem(schema: list[str], hashed: list[int], row: list[Any]) -> str | None:
        for i in hashed:
            value = row[i]
            if value not in ("", None) and not (isinstance(value, str) and _SHA256.match(value)):
                return f"{schema[i]} is not a SHA-256 hash as 64 lowercase hex characters"
        if all(value in ("", None) for value in row):
            return "the row has no identifier"
        return None

    def _add(self, audience: Audience, rows: list[RowKey]) -> None:
        for key in rows:
            audience.add(key)

    def _remove(self, audience: Audience, rows: list[RowKey]) -> None:
        """A removed row takes out every member it matches on a personal identifier (email, phone, ids), as Meta
        matches people; FN, COUNTRY and the like are shared by many and only refine a match. A row with no
        personal identifier removes the identical row only."""
        audience.ensure_index()
        for key in rows:
            personal = [(k, v) for k, v in key if v and k in PERSONAL_KEYS]
            if not personal:
                audience.discard(key)
            for pair in personal:
                for held in list(audience.index.get(pair, ())):
                    audience.discard(held)

    def _replace(self, audience: Audience, session: dict[str, Any], rows: list[RowKey]) -> Reply | None:
        current = audience.replace
        seq = session["batch_seq"]
        if current is not None and current.session_id != session["session_id"]:
            return graph_error(
                2650, "Failed to update the custom audience: another replace session is in progress", subcode=1870145
            )
        if current is None:
            ended = audience.ended_sessions.get(session["session_id"])
            if ended is not None:
                if seq in ended:
                    return None  # a retried batch of a finished session: already applied, nothing to do
                return graph_error(
                    2650, "Failed to update the custom audience: this session has ended", subcode=1870146
                )
            if seq != 1:
                return graph_error(100, f"(#100) A replace session starts with batch_seq 1, got {seq}")
            current = audience.replace = ReplaceSession(session["session_id"])
        if seq in current.batches:
            return None  # a retried batch: already applied
        expected = max(current.batches, default=0) + 1
        if seq != expected:
            return graph_error(100, f"(#100) batch_seq {seq} is out of order: the session expects {expected}")
        current.batches.add(seq)
        current.rows.update(rows)
        if session["last_batch_flag"]:
            audience.reset(current.rows)
            audience.ended_sessions[current.session_id] = current.batches
            audience.replace = None
        return None
