"""A local Braze REST API (`/users/track`) that keeps the documented contract.

Contract (../shared/reference/destinations.md, Braze "Track users", "API errors and responses", rate limits):
- `POST /users/track`, `Authorization: Bearer <REST API key>`; anything else is 401
  `{"message":"Unknown or missing rest_api_key"}` (Braze's fatal errors are `{"message": …}`).
- Body `{"attributes":[{"external_id":"u1","in_segment_vip":true}],"events":[…],"purchases":[…]}`: at most
  75 objects in total a request (else 400); each object needs an identifier (`external_id`, `braze_id`,
  `user_alias`, `email` or `phone`).
- Answer 201 `{"message":"success","attributes_processed":n,"events_processed":m}`; an object Braze cannot
  take does not fail the request: the answer carries `"errors":[{"type","input_array","index"}]` and the
  other objects are applied (partial success). `partial_error_for(predicate)` makes a valid object fail so.
- Attributes are idempotent (setting the same value twice changes nothing); events are not: every accepted
  event is one more (`events`), so a retried batch double-counts.
- Every answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`; a 429 is
  `{"message":"Rate limit exceeded"}` (the Reset header says when to come back).

State for assertions: `users` (external_id → attributes), `attribute_members(name)`, `events`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from .base import FakeServer, RecordedRequest, Reply, bearer_token, json_body

MAX_OBJECTS = 75
IDENTIFIER_KEYS = ("external_id", "braze_id", "user_alias", "email", "phone")
ARRAYS = ("attributes", "events", "purchases")


class FakeBraze(FakeServer):
    vendor = "Braze"

    def __init__(self, api_key: str = "braze-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.users: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.purchases: list[dict[str, Any]] = []
        self._partial_predicates: list[Callable[[dict[str, Any]], bool]] = []

    # ---- setup and assertions --------------------------------------------------------------------------

    def attribute_members(self, name: str) -> set[str]:
        """external_ids of users whose attribute `name` is set and truthy (Rekindle's membership attribute)."""
        with self.lock:
            return {uid for uid, attrs in self.users.items() if attrs.get(name)}

    def partial_error_for(self, predicate: Callable[[dict[str, Any]], bool]) -> None:
        """Objects matching `predicate` fail inside a 201 (listed in `errors`), the rest of the batch applies."""
        with self.lock:
            self._partial_predicates.append(predicate)

    # ---- base hooks ------------------------------------------------------------------------------------

    def common_headers(self, request: RecordedRequest, reply: Reply) -> dict[str, str]:
        return self.x_rate_limit_headers()

    def fault_reply(self, status: int) -> Reply:
        messages = {
            400: "Bad Request",
            401: "Unknown or missing rest_api_key",
            403: "Access Denied",
            404: "Not Found",
            429: "Rate limit exceeded",
        }
        reply = Reply(status, {"message": messages.get(status, "Internal Server Error")})
        if status == 429:
            _, _, reset = self.rate_limit_state()
            reply.headers["X-RateLimit-Remaining"] = "0"
            reply.headers["X-RateLimit-Reset"] = str(math.ceil(max(reset, time.time() + 1)))  # at least a second ahead
        return reply

    def rate_limit_reply(self, reset_at: float) -> Reply:
        return self.fault_reply(429)

    # ---- routes ------------------------------------------------------------------------------------------

    def route(self, request: RecordedRequest) -> Reply:
        if bearer_token(request) != self.api_key:
            return Reply(401, {"message": "Unknown or missing rest_api_key"})
        if request.path != "/users/track":
            return Reply(404, {"message": "Not Found"})
        if request.method != "POST":
            return Reply(405, {"message": "Method Not Allowed"})
        try:
            body = json_body(request)
        except ValueError as exc:
            return Reply(400, {"message": f"Invalid JSON: {exc}"})
        if not isinstance(body, dict) or not any(isinstance(body.get(a), list) and body[a] for a in ARRAYS):
            return Reply(
                400, {"message": "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."}
            )
        if any(a in body and not isinstance(body[a], list) for a in ARRAYS):
            return Reply(400, {"message": "'attributes', 'events' and 'purchases' must be arrays."})
        total = sum(len(body.get(a) or []) for a in ARRAYS)
        if total > MAX_OBJECTS:
            return Reply(
                400,
                {
                    "message": f"Too many objects in request: {total}. At most {MAX_OBJECTS} attributes, events and "
                    "purchases in total are allowed per request."
                },
            )
        objects = [obj for a in ARRAYS for obj in body.get(a) or []]
        if self.rejected(objects):
            return Reply(400, {"message": "Invalid request: a user object could not be parsed."})
        errors: list[dict[str, Any]] = []
        processed = {a: 0 for a in ARRAYS}
        for array in ARRAYS:
            for index, obj in enumerate(body.get(array) or []):
                problem = self._problem(array, obj)
                if problem:
                    errors.append({"type": problem, "input_array": array, "index": index})
                    continue
                self._apply(array, obj)
                processed[array] += 1
        answer: dict[str, Any] = {"message": "success"}
        for array in ARRAYS:
            if body.get(array):
                answer[f"{array}_processed"] = processed[array]
        if errors:
            answer["errors"] = errors
        return Reply(201, answer)

    def _problem(self, array: str, obj: Any) -> str | None:
        if not isinstance(obj, dict):
            return f"'{array}' entries must be objects"
        if not any(obj.get(k) for k in IDENTIFIER_KEYS):
            return "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required"
        if array == "events" and (not obj.get("name") or not obj.get("time")):
            return "event requires 'name' and 'time'"
        if any(p(obj) for p in self._partial_predicates):
            return "Invalid attribute value"
        return None

    def _apply(self, array: str, obj: dict[str, Any]) -> None:
        user_id = str(next(obj[k] for k in IDENTIFIER_KEYS if obj.get(k)))
        if array == "attributes":
            attrs = self.users.setdefault(user_id, {})
            for name, value in obj.items():
                if name in IDENTIFIER_KEYS or name == "_update_existing_only":
                    continue
                if value is None:
                    attrs.pop(name, None)  # null unsets a custom attribute
                else:
                    attrs[name] = value
        elif array == "events":
            self.events.append(dict(obj))
        else:
            self.purchases.append(dict(obj))
