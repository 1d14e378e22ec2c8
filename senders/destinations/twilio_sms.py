"""`twilio_sms`: one templated SMS per member (`POST /2010-04-01/Accounts/{sid}/Messages.json`).

The template is the audience's `options.template` with `{first_name}`-style placeholders from the
audience's fields; the sender is `options.from` (a number) or `options.messaging_service_sid`. Phones go as
E.164 with `+` (senders/normalise.py), a number that cannot be normalised is rejected before any request.

Twilio has no idempotency key, so a message POST is never blindly retried: only answers that prove nothing
was processed are (429 / 20429, 503, connection refused). A timeout, a dropped connection or another 5xx
is reconciled by listing the messages sent to that number since the day before the run
(`GET …/Messages.json?To=…&DateSent>=…`) and looking for this message's body and sender. 21610 (the
recipient replied STOP) and 21211 (invalid number) become suppressions for the channel.
"""

from __future__ import annotations

import base64
import re
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from senders.destinations.base import AmbiguousDelivery, BatchOutcome, Destination, Member, RejectedBatch

SUPPRESSING = {21610: "21610 recipient opted out (STOP)", 21211: "21211 invalid To number"}
MAX_BODY = 1_600


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


class TwilioSms(Destination):
    kind: ClassVar[str] = "twilio_sms"
    max_batch_rows: ClassVar[int] = 100  # one message a request; a batch is the unit the ledger records
    supports_remove: ClassVar[bool] = False
    modes: ClassVar[tuple[str, ...]] = ("append",)
    default_channel: ClassVar[str] = "sms"
    required_options: ClassVar[tuple[str, ...]] = ("template",)
    optional_options: ClassVar[tuple[str, ...]] = ("from", "messaging_service_sid", "default_country")
    identifier_fields: ClassVar[tuple[str, ...]] = ("phone",)
    idempotent: ClassVar[bool] = False
    default_base_url: ClassVar[str] = "https://api.twilio.com"

    @classmethod
    def check_audience(cls, audience) -> str | None:
        options = audience.options
        if not options.get("from") and not options.get("messaging_service_sid"):
            return "field 'options.from' (or 'options.messaging_service_sid') is required for twilio_sms"
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(str(options["template"])) if name}
        except ValueError as exc:
            return f"field 'options.template' is not a valid template: {exc}"
        unknown = sorted(names - set(audience.fields))
        if unknown:
            return f"field 'options.template' uses {unknown}, which are not in 'fields' ({', '.join(audience.fields)})"
        return None

    @classmethod
    def auth_headers(cls, credentials: Mapping[str, str]) -> dict[str, str]:
        token = base64.b64encode(f"{credentials.get('login', '')}:{credentials.get('password', '')}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    @property
    def messages_path(self) -> str:
        return f"/2010-04-01/Accounts/{self.credentials.get('login', '')}/Messages.json"

    def message(self, member: Member) -> dict[str, str] | None:
        from senders import normalise

        phone = normalise.phone_e164(
            str(member.fields.get("phone") or ""), self.audience.options.get("default_country")
        )
        if not phone:
            return None
        values = _Blank({k: "" if v is None else v for k, v in member.fields.items()})
        form = {"To": phone, "Body": str(self.audience.options["template"]).format_map(values)[:MAX_BODY]}
        if self.audience.options.get("messaging_service_sid"):
            form["MessagingServiceSid"] = str(self.audience.options["messaging_service_sid"])
        else:
            form["From"] = str(self.audience.options["from"])
        return form

    def delivered(self, form: dict[str, str]) -> bool:
        # Twilio filters by sent date (UTC day): from the day before the oldest request in flight, or before now
        since = ((self.pending_since or datetime.now(UTC).replace(tzinfo=None)) - timedelta(days=1)).date().isoformat()
        params: dict[str, str] | None = {"To": form["To"], "DateSent>": since, "PageSize": "100"}
        path = self.messages_path
        while path:
            page = self.http.request("GET", path, params=params).json()
            for message in page.get("messages", []):
                same_sender = message.get("from") == form.get("From") or message.get(
                    "messaging_service_sid"
                ) == form.get("MessagingServiceSid")
                if message.get("body") == form["Body"] and same_sender:
                    return True
            path, params = page.get("next_page_uri"), None
        return False

    def reconcile(self, members: Sequence[Member]) -> set[str]:
        found = set()
        for member in members:
            form = self.message(member)
            if form is not None and self.delivered(form):
                found.add(member.user_id)
        return found

    def add(self, members: Sequence[Member]) -> BatchOutcome:
        outcome = BatchOutcome()
        for member in members:
            form = self.message(member)
            if form is None:
                outcome.rejected[member.user_id] = "phone cannot be normalised to E.164"
                continue
            for attempt in range(2):
                try:
                    self.http.request("POST", self.messages_path, data=form, idempotent=False)
                    outcome.accepted.append(member.user_id)
                    break
                except RejectedBatch as exc:
                    code = re.search(r"code (\d+)", str(exc))
                    number = int(code.group(1)) if code else None
                    if number in SUPPRESSING:
                        outcome.suppress[member.user_id] = SUPPRESSING[number]
                    else:
                        outcome.rejected[member.user_id] = str(exc)
                    break
                except AmbiguousDelivery:
                    if self.delivered(form):
                        outcome.accepted.append(member.user_id)
                        break
                    if attempt == 1:
                        raise
        return outcome
