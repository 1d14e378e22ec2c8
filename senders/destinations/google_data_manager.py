"""`google_data_manager`: Customer Match members through Google's Data Manager API.

`POST /v1/audienceMembers:ingest` and `:remove` on datamanager.googleapis.com, `Authorization: Bearer
<oauth token>` (the connection's password), at most 10,000 members a request. Email (trimmed, lower-cased)
and phone (E.164 with the leading `+`) are normalised (senders/normalise.py), SHA-256 hashed and sent as
HEX. Consent is declared granted because only members with consent for the channel reach a destination.
The destination is `options.operating_account_id` (+ `account_type`, default GOOGLE_ADS) and
`options.product_destination_id` (the user list). A request with one malformed member is refused whole (400,
no partial apply): the engine splits it to isolate that member.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from senders.destinations.base import BatchOutcome, Destination, Member

CONSENT = {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}


class GoogleDataManager(Destination):
    kind: ClassVar[str] = "google_data_manager"
    max_batch_rows: ClassVar[int] = 10_000
    supports_remove: ClassVar[bool] = True
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

    def member(self, member: Member) -> dict | None:
        from senders import normalise

        identifiers = []
        country = self.audience.options.get("default_country")
        for field, key, clean in (
            ("email", "emailAddress", normalise.email_google),
            ("phone", "phoneNumber", lambda value: normalise.phone_e164(value, country)),
        ):
            if field not in self.audience.fields:
                continue
            try:
                value = clean(member.fields.get(field))
            except normalise.NormalisationError:
                value = None  # one bad identifier does not stop matching on the other
            if value:
                identifiers.append({key: normalise.sha256_hex(value)})
        return {"userData": {"userIdentifiers": identifiers}} if identifiers else None

    def batch_size_bytes(self, members: Sequence[Member]) -> int:
        return len(members) * 200

    def call(self, operation: str, members: Sequence[Member]) -> BatchOutcome:
        options = self.audience.options
        rejected: dict[str, str] = {}
        sent: list[Member] = []
        payload = []
        for m in members:
            entry = self.member(m)
            if entry is None:
                rejected[m.user_id] = "no email or phone that normalises"
            else:
                sent.append(m)
                payload.append(entry)
        if payload:
            body = {
                "destinations": [
                    {
                        "operatingAccount": {
                            "accountType": options.get("account_type", "GOOGLE_ADS"),
                            "accountId": str(options["operating_account_id"]),
                        },
                        "productDestinationId": str(options["product_destination_id"]),
                    }
                ],
                "audienceMembers": payload,
                "encoding": "HEX",
            }
            if operation == "ingest":
                body["consent"] = CONSENT
            self.http.request("POST", f"/v1/audienceMembers:{operation}", json=body)
        return BatchOutcome(accepted=[m.user_id for m in sent], rejected=rejected)

    def add(self, members: Sequence[Member]) -> BatchOutcome:
        return self.call("ingest", members)

    def remove(self, members: Sequence[Member]) -> BatchOutcome:
        return self.call("remove", members)
