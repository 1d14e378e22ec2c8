"""A local SendGrid Marketing Campaigns API (contacts and lists) that keeps the documented contract.

Contract (../shared/reference/destinations.md, SendGrid v3 API reference):
- `Authorization: Bearer <key>`; anything else is 401 `{"errors":[{"field":null,"message":"authorization required"}]}`.
- `PUT /v3/marketing/contacts` `{"list_ids":[...],"contacts":[...]}`: at most 30,000 contacts and 6 MB; each
  contact needs `email`, `phone_number_id`, `external_id` or `anonymous_id`; email at most 254 characters.
  Answer 202 `{"job_id"}`; the import runs asynchronously.
- `GET /v3/marketing/contacts/imports/{id}`: `pending` for the first `job_pending_polls` polls, then
  `completed` (or `failed`, see `fail_next_job`) with `results` counts. Contacts reach the list only when the
  job completes. Syntactically bad email addresses do not fail the request: they are counted in
  `errored_count` and listed at `errors_url`.
- `POST /v3/marketing/contacts/search/emails` `{"emails":[...]}` (at most 100): 200 `{"result":{email:
  {"contact":{...}} | {"error":"contact not found"}}}`, 404 when none matches.
- `DELETE /v3/marketing/lists/{list_id}/contacts?contact_ids=a,b` → 202 `{"job_id"}` (job type
  `remove_contacts_from_list`, applied when the job completes).
- `POST /v3/marketing/lists` `{"name"}` → 201; `GET /v3/marketing/lists/{id}` → the list with `contact_count`.
- Every answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (epoch seconds); a 429
  has the body `{"errors":[{"field":null,"message":"too many requests"}]}`.

State for assertions: `list_members(list_id)` (set of emails), `contacts` (by email), `jobs`.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .base import FakeServer, RecordedRequest, Reply, bearer_token, json_body

MAX_CONTACTS = 30_000
MAX_BODY_BYTES = 6_000_000  # "6 MB": the stricter, decimal reading, so a client cutting it fine is caught
MAX_SEARCH_EMAILS = 100
MAX_EMAIL_CHARS = 254
IDENTIFIERS = ("email", "phone_number_id", "external_id", "anonymous_id")
# Deliberately loose, like SendGrid's own check: one @, something on each side, a dot in the domain.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _errors(*items: tuple[str | None, str]) -> dict[str, Any]:
    return {"errors": [{"field": f, "message": m} for f, m in items]}


@dataclass
class Job:
    id: str
    job_type: str  # "upsert" | "remove_contacts_from_list"
    requested: list[dict[str, Any]] = field(default_factory=list)  # upsert: the contacts as received
    list_ids: list[str] = field(default_factory=list)
    contact_ids: list[str] = field(default_factory=list)  # removal
    polls: int = 0
    status: str = "pending"
    results: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    fail: bool = False


class FakeSendGrid(FakeServer):
    vendor = "SendGrid"

    def __init__(self, api_key: str = "SG.test-key", *, job_pending_polls: int = 1) -> None:
        super().__init__()
        self.api_key = api_key
        self.job_pending_polls = job_pending_polls
        self.lists: dict[str, str] = {}  # id -> name
        self.contacts: dict[str, dict[str, Any]] = {}  # lower-cased email (or other identifier) -> contact
        self.jobs: dict[str, Job] = {}
        self._fail_jobs = 0

    # ---- setup and assertions --------------------------------------------------------------------------

    def create_list(self, name: str = "rekindle") -> str:
        with self.lock:
            list_id = str(uuid.uuid4())
            self.lists[list_id] = name
            return list_id

    def list_members(self, list_id: str) -> set[str]:
        """Emails (lower-cased) of the contacts on the list, as of the jobs completed so far."""
        with self.lock:
            return {c.get("email") or key for key, c in self.contacts.items() if list_id in c["list_ids"]}

    def complete_all_jobs(self) -> None:
        """Let time pass: every pending job finishes (as SendGrid would, polled or not)."""
        with self.lock:
            for job in self.jobs.values():
                if job.status == "pending":
                    self._finish(job)

    def fail_next_job(self, times: int = 1) -> None:
        """The next `times` accepted jobs end `failed` with nothing applied."""
        with self.lock:
            self._fail_jobs += times

    # ---- base hooks ------------------------------------------------------------------------------------

    def common_headers(self, request: RecordedRequest, reply: Reply) -> dict[str, str]:
        return self.x_rate_limit_headers()

    def fault_reply(self, status: int) -> Reply:
        messages = {
            400: "bad request",
            401: "authorization required",
            403: "access forbidden",
            404: "resource not found",
            413: "request entity too large",
            429: "too many requests",
            500: "internal server error",
            502: "bad gateway",
            503: "service unavailable",
        }
        reply = Reply(status, _errors((None, messages.get(status, "error"))))
        if status == 429:
            _, _, reset = self.rate_limit_state()
            reply.headers["X-RateLimit-Remaining"] = "0"
            reply.headers["X-RateLimit-Reset"] = str(math.ceil(max(reset, time.time() + 1)))  # at least a second ahead
        return reply

    def rate_limit_reply(self, reset_at: float) -> Reply:
        return self.fault_reply(429)  # SendGrid's hint is X-RateLimit-Reset (on every answer), no Retry-After

    # ---- routes ------------------------------------------------------------------------------------------

    def route(self, request: RecordedRequest) -> Reply:
        errors_file = re.fullmatch(r"/v3/marketing/contacts/imports/([^/]+)/errors", request.path)
        if errors_file and request.method == "GET":
            return self._job_errors(errors_file.group(1))  # a download link, like SendGrid's: no API key needed
        if bearer_token(request) != self.api_key:
            return Reply(401, _errors((None, "authorization required")))
        path, method = request.path.rstrip("/"), request.method
        if path == "/v3/marketing/contacts" and method == "PUT":
            return self._upsert(request)
        if path == "/v3/marketing/contacts/search/emails" and method == "POST":
            return self._search_emails(request)
        if (m := re.fullmatch(r"/v3/marketing/contacts/imports/([^/]+)", path)) and method == "GET":
            return self._job_status(m.group(1))
        if (m := re.fullmatch(r"/v3/marketing/lists/([^/]+)/contacts", path)) and method == "DELETE":
            return self._remove_from_list(m.group(1), request)
        if path == "/v3/marketing/lists" and method == "POST":
            return self._create_list(request)
        if (m := re.fullmatch(r"/v3/marketing/lists/([^/]+)", path)) and method == "GET":
            return self._get_list(m.group(1))
        return Reply(404, _errors((None, "resource not found")))

    def _upsert(self, request: RecordedRequest) -> Reply:
        if len(request.body) > MAX_BODY_BYTES:
            return Reply(413, _errors((None, "request entity too large: the body must be under 6 MB")))
        try:
            body = json_body(request)
        except ValueError as exc:
            return Reply(400, _errors((None, str(exc))))
        contacts = body.get("contacts") if isinstance(body, dict) else None
        if not isinstance(contacts, list) or not contacts:
            return Reply(400, _errors(("contacts", "contacts is required and must be a non-empty array")))
        if len(contacts) > MAX_CONTACTS:
            return Reply(400, _errors(("contacts", f"contacts must contain at most {MAX_CONTACTS} items")))
        list_ids = body.get("list_ids", [])
        if not isinstance(list_ids, list) or not all(isinstance(x, str) for x in list_ids):
            return Reply(400, _errors(("list_ids", "list_ids must be an array of strings")))
        unknown = [i for i, list_id in enumerate(list_ids) if list_id not in self.lists]
        if unknown:
            return Reply(404, _errors((f"list_ids[{unknown[0]}]", "list does not exist")))
        problems: list[tuple[str | None, str]] = []
        for i, contact in enumerate(contacts):
            if not isinstance(contact, dict) or not any(contact.get(k) for k in IDENTIFIERS):
                problems.append((f"contacts[{i}]", "contact must have an identifier: " + ", ".join(IDENTIFIERS)))
            elif isinstance(contact.get("email"), str) and len(contact["email"]) > MAX_EMAIL_CHARS:
                problems.append((f"contacts[{i}].email", f"email must be at most {MAX_EMAIL_CHARS} characters"))
            elif "custom_fields" in contact and not isinstance(contact["custom_fields"], dict):
                problems.append((f"contacts[{i}].custom_fields", "custom_fields must be an object"))
        for i in self.rejected(contacts):
            problems.append((f"contacts[{i}]", "contact is invalid"))
        if problems:
            return Reply(400, _errors(*problems))
        job = self._new_job("upsert", requested=contacts, list_ids=list_ids)
        return Reply(202, {"job_id": job.id})

    def _remove_from_list(self, list_id: str, request: RecordedRequest) -> Reply:
        if list_id not in self.lists:
            return Reply(404, _errors(("id", "list does not exist")))
        raw = request.param("contact_ids")
        if not raw:
            return Reply(400, _errors(("contact_ids", "contact_ids is required")))
        ids = [x for x in raw.split(",") if x]
        known = {c["id"] for c in self.contacts.values()}
        unknown = [x for x in ids if x not in known]
        if unknown:
            return Reply(400, _errors(("contact_ids", f"{len(unknown)} contact ids are not valid contact ids")))
        job = self._new_job("remove_contacts_from_list", list_ids=[list_id], contact_ids=ids)
        return Reply(202, {"job_id": job.id})

    def _search_emails(self, request: RecordedRequest) -> Reply:
        try:
            body = json_body(request)
        except ValueError as exc:
            return Reply(400, _errors((None, str(exc))))
        emails = body.get("emails") if isinstance(body, dict) else None
        if not isinstance(emails, list) or not emails:
            return Reply(400, _errors(("emails", "emails is required and must be a non-empty array")))
        if len(emails) > MAX_SEARCH_EMAILS:
            return Reply(400, _errors(("emails", f"emails must contain at most {MAX_SEARCH_EMAILS} items")))
        result: dict[str, Any] = {}
        found = 0
        for email in emails:
            if not isinstance(email, str) or not email.strip():
                continue  # empty strings are excluded from the search
            key = email.strip().lower()
            contact = self.contacts.get(key)
            if contact is None:
                result[key] = {"error": "contact not found"}
            else:
                found += 1
                result[key] = {"contact": self._public(contact)}
        if not found:
            return Reply(404, _errors((None, "no contacts found")))
        return Reply(200, {"result": result})

    def _job_status(self, job_id: str) -> Reply:
        job = self.jobs.get(job_id)
        if job is None:
            return Reply(404, _errors((None, "job not found")))
        if job.status == "pending":
            job.polls += 1
            if job.polls > self.job_pending_polls:
                self._finish(job)
        answer: dict[str, Any] = {"id": job.id, "status": job.status, "job_type": job.job_type}
        if job.status != "pending":
            answer["results"] = job.results
            answer["finished_at"] = job.results.get("finished_at")
        return Reply(200, answer)

    def _job_errors(self, job_id: str) -> Reply:
        job = self.jobs.get(job_id)
        if job is None:
            return Reply(404, _errors((None, "job not found")))
        lines = ["email,error"] + [f"{e['email']},{e['error']}" for e in job.errors]
        return Reply(200, "\n".join(lines) + "\n", content_type="text/csv")

    def _create_list(self, request: RecordedRequest) -> Reply:
        try:
            body = json_body(request)
        except ValueError as exc:
            return Reply(400, _errors((None, str(exc))))
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            return Reply(400, _errors(("name", "name is required")))
        list_id = self.create_list(name)
        return Reply(201, {"id": list_id, "name": name, "contact_count": 0})

    def _get_list(self, list_id: str) -> Reply:
        if list_id not in self.lists:
            return Reply(404, _errors((None, "list not found")))
        count = len(self.list_members(list_id))
        return Reply(200, {"id": list_id, "name": self.lists[list_id], "contact_count": count})

    # ---- jobs --------------------------------------------------------------------------------------------

    def _new_job(self, job_type: str, **kwargs: Any) -> Job:
        job = Job(id=str(uuid.uuid4()), job_type=job_type, **kwargs)
        if self._fail_jobs:
            self._fail_jobs -= 1
            job.fail = True
        self.jobs[job.id] = job
        if self.job_pending_polls <= 0:
            self._finish(job)
        return job

    def _finish(self, job: Job) -> None:
        counts = {"requested_count": 0, "created_count": 0, "updated_count": 0, "deleted_count": 0}
        counts["errored_count"] = 0
        if job.fail:
            job.status = "failed"
            job.results = {**counts, "finished_at": _now_iso()}
            return
        if job.job_type == "upsert":
            counts["requested_count"] = len(job.requested)
            for contact in job.requested:
                email = contact.get("email")
                if email is not None and (not isinstance(email, str) or not _EMAIL.match(email.strip())):
                    counts["errored_count"] += 1
                    job.errors.append({"email": str(email), "error": "invalid email"})
                    continue
                key = email.strip().lower() if email else str(next(contact[k] for k in IDENTIFIERS if contact.get(k)))
                existing = self.contacts.get(key)
                if existing is None:
                    counts["created_count"] += 1
                    existing = self.contacts[key] = {"id": str(uuid.uuid4()), "list_ids": set(), "custom_fields": {}}
                else:
                    counts["updated_count"] += 1
                for name, value in contact.items():
                    if name == "custom_fields":
                        existing["custom_fields"].update(value)
                    else:
                        existing[name] = value.strip().lower() if name == "email" else value
                existing["list_ids"].update(job.list_ids)
        else:
            counts["requested_count"] = len(job.contact_ids)
            wanted = set(job.contact_ids)
            for contact in self.contacts.values():
                if contact["id"] in wanted:
                    contact["list_ids"].difference_update(job.list_ids)
                    counts["deleted_count"] += 1
        job.status = "completed"
        job.results = {**counts, "finished_at": _now_iso()}
        if counts["errored_count"]:
            job.results["errors_url"] = f"{self.base_url}/v3/marketing/contacts/imports/{job.id}/errors"

    @staticmethod
    def _public(contact: dict[str, Any]) -> dict[str, Any]:
        return {**contact, "list_ids": sorted(contact["list_ids"])}


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
