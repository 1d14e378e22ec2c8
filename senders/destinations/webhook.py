"""`webhook`: each batch POSTed as one Standard Webhooks message (the Svix convention).

Headers `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">` keyed with the connection's password (`whsec_…` base64 secret, as the
`standardwebhooks` library issues them). The body follows CleverTap's webhook shape with the event type:
`{"type": "audience.members_added", "audience": ..., "profiles": [{"Identity": ..., ...}]}`.

The `webhook-id` is the batch's content digest: a batch re-sent after a crash or a timeout carries the
same id, which receivers use to drop duplicates (the Standard Webhooks specification asks them to), so a
retried POST is idempotent for a conforming receiver.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar

from senders.destinations.base import BatchOutcome, Destination, Member, batch_digest

EVENT_TYPES = {"add": "audience.members_added", "send": "audience.members_added", "remove": "audience.members_removed"}


class Webhook(Destination):
    kind: ClassVar[str] = "webhook"
    max_batch_rows: ClassVar[int] = 1_000
    max_batch_bytes: ClassVar[int | None] = 1_000_000
    supports_remove: ClassVar[bool] = True
    optional_options: ClassVar[tuple[str, ...]] = ("path",)

    def __init__(self, audience, credentials, http, run) -> None:
        super().__init__(audience, credentials, http, run)
        from standardwebhooks.webhooks import Webhook as Signer

        self.signer = Signer(credentials.get("password") or "")

    @classmethod
    def check_audience(cls, audience) -> str | None:
        return None

    def post(self, action: str, members: Sequence[Member]) -> BatchOutcome:
        message_id = f"msg_{batch_digest(action, members)[:32]}"
        profiles = [{"Identity": m.user_id, **{k: v for k, v in m.fields.items() if k != "user_id"}} for m in members]
        body = json.dumps(
            {
                "type": EVENT_TYPES[action],
                "audience": self.audience.name,
                "run_id": self.run.run_id,
                "profiles": profiles,
            },
            separators=(",", ":"),
        )
        timestamp = datetime.now(UTC)
        signature = self.signer.sign(message_id, timestamp, body)
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": signature,
        }
        self.http.request("POST", self.audience.options.get("path", ""), data=body.encode(), headers=headers)
        return BatchOutcome(accepted=[m.user_id for m in members])

    def add(self, members: Sequence[Member]) -> BatchOutcome:
        return self.post("send" if self.audience.mode == "append" else "add", members)

    def remove(self, members: Sequence[Member]) -> BatchOutcome:
        return self.post("remove", members)
