"""`google_data_manager`: Customer Match members through Google's Data Manager API.

`POST /v1/audienceMembers:ingest` and `:remove` on datamanager.googleapis.com, `Authorization: Bearer
<oauth token>` (the connection's password), at most 10,000 members a request. Email (trimmed, lower-cased)
and phone (E.164 with the leading `+`) are normalised (senders/normalise.py), SHA-256 hashed and sent as
HEX. Consent is declared granted because only members with consent for the channel reach a destination.
The destination is `options.operating_account_id` (+ `account_type`, default GOOGLE_ADS) and
`options.product_destination_id` (the user list). A request with one malformed member is refused whole (400,
no partial apply): the engine splits it to isolate that member.

The hashes sent are reported to the engine, which keeps them in sync_state; removals send the stored hashes.
Replace, as Google documents it: note the time T (the engine's `sync_replace` ledger keeps it across reruns),
ingest every member, then `audienceMembers:removeAll` with `removeAsOfTime` T, which removes only the members
last added before T, so the list is never empty meanwhile. T is sent `CLOCK_ALLOWANCE` earlier than noted:
were our clock ahead of Google's, members ingested just after T would otherwise count as older and go.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import ClassVar

from senders import normalise
from senders.destinations.base import BatchOutcome, Destination, Member, ReplaceBatch

CONSENT = {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}
CLOCK_ALLOWANCE = timedelta(seconds=60)
KEYS = {"email": "emailAddress", "phone": "phoneNumber"}


class GoogleDataManager(Destination):
    kind: ClassVar[str] = "google_data_manager"
    max_batch_rows: ClassVar[int] = 10_000
    supports_remove: ClassVar[bool] = True
    hashed: ClassVar[bool] = True
    supports_replace: ClassVar[bool] = True
    modes: ClassVar[tuple[str, ...]] = ("mirror", "upsert")
    default_channel: ClassVar[str] = "ads"
    required_options: ClassVar[tuple[str, ...]] = ("operating_account_id", "product_destination_id")
    optional_options: ClassVar[tuple[str, ...]] = ("account_type", "default_country")
    identifier_fields: ClassVar[tuple[str, ...]] = ("email", "phone")
    default_base_url: ClassVar[str] = "https://datamanager.googleapis.com"

    @classmethod
    def check_audience(cls, audience) -> str | None:
        extra = [f for f in audience.fields if f not in ("email", "phone", "user_id")]
        if extra:
            return f"field 'fields' has {extra}: Google matches on email and phone only"
        return None

    @classmethod
    def auth_headers(cls, credentials: Mapping[str, str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {credentials.get('password', '')}"}

    def hashes(self, member: Member) -> dict[str, str]:
        """email and phone, normalised as Google says and SHA-256 hashed (field -> hash)."""
        hashes = {}
        country = self.audience.options.get("default_country")
        for field, clean in (
            ("email", normalise.email_google),
            ("phone", lambda value: normalise.phone_e164(value, country)),
        ):
            if field not in self.audience.fields:
                continue
            try:
                value = clean(member.fields.get(field))
            except normalise.NormalisationError:
                value = None  # one bad identifier does not stop matching on the other
            if value:
                hashes[field] = normalise.sha256_hex(value)
        return hashes

    def batch_size_bytes(self, members: Sequence[Member]) -> int:
        return len(members) * 200

    def destinations(self) -> list[dict]:
        options = self.audience.options
        return [
            {
                "operatingAccount": {
                    "accountType": options.get("account_type", "GOOGLE_ADS"),
                    "accountId": str(options["operating_account_id"]),
                },
                "productDestinationId": str(options["product_destination_id"]),
            }
        ]

    def call(self, operation: str, members: Sequence[Member], hashed: bool) -> BatchOutcome:
        """`hashed`: the members' fields already are the hashes (removals by what sync_state holds)."""
        outcome = BatchOutcome()
        payload = []
        for m in members:
            hashes = {f: h for f, h in m.fields.items() if f in KEYS and h} if hashed else self.hashes(m)
            if not hashes:
                outcome.rejected[m.user_id] = "no email or phone that normalises"
                continue
            outcome.accepted.append(m.user_id)
            outcome.hashes[m.user_id] = hashes
            payload.append({"userData": {"userIdentifiers": [{KEYS[f]: h} for f, h in hashes.items()]}})
        if payload:
            body = {"destinations": self.destinations(), "audienceMembers": payload, "encoding": "HEX"}
            if operation == "ingest":
                body["consent"] = CONSENT
            self.http.request("POST", f"/v1/audienceMembers:{operation}", json=body)
        return outcome

    def add(self, members: Sequence[Member]) -> BatchOutcome:
        return self.call("ingest", members, hashed=False)

    def replace(self, members: Sequence[Member], batch: ReplaceBatch) -> BatchOutcome:
        return self.add(members)  # ingest; the old members go in end_replace

    def end_replace(self, started_at: datetime) -> None:
        as_of = (started_at - CLOCK_ALLOWANCE).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {"destinations": self.destinations(), "removeAsOfTime": as_of}
        self.http.request("POST", "/v1/audienceMembers:removeAll", json=body)

    def remove(self, members: Sequence[Member]) -> BatchOutcome:
        """`members` carry the stored identifier hashes as their fields (see Destination.hashed)."""
        return self.call("remove", members, hashed=True)
