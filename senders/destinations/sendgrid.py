"""`sendgrid`: Marketing Campaigns contacts upserted into a list, and removed from it.

Upsert is `PUT /v3/marketing/contacts` with the list id (≤ 30,000 contacts and ≤ 6 MB a request). SendGrid
answers 202 with a job id and imports asynchronously, so a batch counts as accepted only once its job has
completed: `add` polls `GET /v3/marketing/contacts/imports/{id}` and reads the job's `errored_count`, then
the `errors_url` CSV to name the rejected addresses. Removal finds contact ids with
`POST /v3/marketing/contacts/search/emails` (≤ 100 a call) and deletes them from the list (a job, polled too).
Reserved fields go as they are (email, first_name, last_name, phone_number, city, country); any other field
needs a custom field id in `options.custom_fields` (`{lifecycle_stage: e1_T}`), as SendGrid keys them by id.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import ClassVar

from senders.destinations.base import BatchOutcome, Destination, DestinationError, Member

RESERVED = {
    "email": "email",
    "first_name": "first_name",
    "last_name": "last_name",
    "phone": "phone_number",
    "city": "city",
    "country": "country",
}
SEARCH_LIMIT = 100
POLL_SECONDS = 2.0
MAX_POLLS = 900  # 30 minutes at 2 s


class SendGrid(Destination):
    kind: ClassVar[str] = "sendgrid"
    max_batch_rows: ClassVar[int] = 30_000
    max_batch_bytes: ClassVar[int | None] = 6 * 1000 * 1000  # "6 MB"; decimal to stay below either reading
    supports_remove: ClassVar[bool] = True
    modes: ClassVar[tuple[str, ...]] = ("mirror", "upsert")
    default_channel: ClassVar[str] = "email"
    required_options: ClassVar[tuple[str, ...]] = ("list_id",)
    optional_options: ClassVar[tuple[str, ...]] = ("custom_fields",)
    identifier_fields: ClassVar[tuple[str, ...]] = ("email",)
    default_base_url: ClassVar[str] = "https://api.sendgrid.com"

    @classmethod
    def check_audience(cls, audience) -> str | None:
        custom = audience.options.get("custom_fields") or {}
        if not isinstance(custom, dict):
            return "field 'options.custom_fields' must map field names to SendGrid custom field ids"
        unmapped = [f for f in audience.fields if f not in RESERVED and f != "user_id" and f not in custom]
        if unmapped:
            return (
                f"field 'fields' has {unmapped}, which SendGrid keeps only as custom fields: give their ids in"
                f" 'options.custom_fields' or send only {', '.join(RESERVED)}"
            )
        return None

    @classmethod
    def auth_headers(cls, credentials: Mapping[str, str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {credentials.get('password', '')}"}

    def contact(self, member: Member) -> dict:
        custom_ids = self.audience.options.get("custom_fields") or {}
        contact: dict = {}
        custom: dict = {}
        for name, value in member.fields.items():
            if name == "user_id" or value is None:
                continue
            if name in RESERVED:
                contact[RESERVED[name]] = value
            else:
                custom[custom_ids[name]] = value
        if "user_id" in self.audience.fields:
            contact["external_id"] = member.user_id
        if custom:
            contact["custom_fields"] = custom
        return contact

    def batch_size_bytes(self, members: Sequence[Member]) -> int:
        import json

        return sum(len(json.dumps(self.contact(m))) + 1 for m in members) + 64

    def wait_for(self, job_id: str) -> dict:
        for _ in range(MAX_POLLS):
            job = self.http.request("GET", f"/v3/marketing/contacts/imports/{job_id}").json()
            if job.get("status") != "pending":
                return job
            self.http.sleep(POLL_SECONDS)
        raise DestinationError(f"SendGrid job {job_id} still pending after {MAX_POLLS} polls")

    def add(self, members: Sequence[Member]) -> BatchOutcome:
        body = {"list_ids": [self.audience.options["list_id"]], "contacts": [self.contact(m) for m in members]}
        job_id = self.http.request("PUT", "/v3/marketing/contacts", json=body).json()["job_id"]
        job = self.wait_for(job_id)
        if job.get("status") in ("failed", "errored") and not (job.get("results") or {}).get("errors_url"):
            raise DestinationError(f"SendGrid import job {job_id} {job.get('status')}")
        results = job.get("results") or {}
        rejected: dict[str, str] = {}
        unattributed = 0
        if results.get("errored_count"):
            by_email = {str(m.fields.get("email", "")).strip().lower(): m.user_id for m in members}
            errors_url = results.get("errors_url")
            if errors_url:
                text = self.http.request("GET", errors_url).text
                for row in csv.DictReader(io.StringIO(text)):
                    user_id = by_email.get(str(row.get("email", "")).strip().lower())
                    if user_id is not None:
                        rejected[user_id] = f"SendGrid import: {row.get('error') or 'errored'}"
            unattributed = max(0, int(results["errored_count"]) - len(rejected))
        return BatchOutcome(
            accepted=[m.user_id for m in members if m.user_id not in rejected],
            rejected=rejected,
            unattributed_failures=unattributed,
        )

    def remove(self, members: Sequence[Member]) -> BatchOutcome:
        rejected: dict[str, str] = {}
        contact_ids: list[str] = []
        with_email = []
        for m in members:
            email = str(m.fields.get("email") or "").strip().lower()
            if email:
                with_email.append((email, m.user_id))
            else:
                rejected[m.user_id] = "missing_identifier: no email to find the contact by"
        for start in range(0, len(with_email), SEARCH_LIMIT):
            chunk = with_email[start : start + SEARCH_LIMIT]
            try:
                response = self.http.request(
                    "POST", "/v3/marketing/contacts/search/emails", json={"emails": [e for e, _ in chunk]}
                )
            except DestinationError as exc:
                if "404" in str(exc):
                    continue  # none of them is a contact: nothing to remove
                raise
            result = response.json().get("result", {})
            for email, _ in chunk:
                contact = (result.get(email) or {}).get("contact")
                if contact:
                    contact_ids.append(contact["id"])
        if contact_ids:
            list_id = self.audience.options["list_id"]
            # ids are UUIDs (36 chars): 100 a request keeps the URL well under common 8 KB limits
            for start in range(0, len(contact_ids), SEARCH_LIMIT):
                ids = ",".join(contact_ids[start : start + SEARCH_LIMIT])
                job_id = self.http.request(
                    "DELETE", f"/v3/marketing/lists/{list_id}/contacts", params={"contact_ids": ids}
                ).json()["job_id"]
                job = self.wait_for(job_id)
                if job.get("status") != "completed":
                    raise DestinationError(f"SendGrid removal job {job_id} {job.get('status')}")
        return BatchOutcome(accepted=[m.user_id for m in members if m.user_id not in rejected], rejected=rejected)
