"""A local webhook endpoint that verifies Standard Webhooks signatures, as a careful receiver does.

Contract (../shared/reference/destinations.md, the Standard Webhooks specification):
- Headers `webhook-id`, `webhook-timestamp` (epoch seconds), `webhook-signature: v1,<base64 HMAC-SHA256>`
  over `"{id}.{timestamp}.{body}"` with the secret's bytes (`whsec_<base64>`). Verified with the
  `standardwebhooks` reference library, which also refuses a timestamp more than 5 minutes from now.
  A bad or missing signature, or a stale timestamp, is 401 `{"error": …}`; a body that is not JSON is 400.
- A delivery whose `webhook-id` was already accepted is answered 200 again but not applied twice
  (`duplicates` counts them): that is what lets a sender retry safely.
- Any path (the receiver's URL is whatever the audience configures); answers 200 `{"received": true}`.

State for assertions: `deliveries` (accepted payloads, by webhook-id, in arrival order), `duplicates`.
"""

from __future__ import annotations

import base64
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from .base import FakeServer, RecordedRequest, Reply

DEFAULT_SECRET = "whsec_" + base64.b64encode(b"rekindle-test-webhook-secret-32b").decode()


class FakeWebhookReceiver(FakeServer):
    vendor = "webhook receiver"

    def __init__(self, secret: str = DEFAULT_SECRET) -> None:
        super().__init__()
        self.secret = secret
        self._webhook = Webhook(secret)
        self.deliveries: dict[str, Any] = {}  # webhook-id -> payload (dicts keep arrival order)
        self.duplicates = 0
        self.rejected_signatures = 0

    @property
    def url(self) -> str:
        return f"{self.base_url}/hooks/rekindle"

    def payloads(self) -> list[Any]:
        with self.lock:
            return list(self.deliveries.values())

    def fault_reply(self, status: int) -> Reply:
        reply = Reply(status, {"error": f"receiver answered {status}"})
        if status in (429, 503):
            reply.headers["Retry-After"] = "1"
        return reply

    def route(self, request: RecordedRequest) -> Reply:
        if request.method != "POST":
            return Reply(405, {"error": "POST only"})
        headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
        try:
            payload = self._webhook.verify(request.body, headers)
        except WebhookVerificationError as exc:
            self.rejected_signatures += 1
            return Reply(401, {"error": f"signature verification failed: {exc}"})
        except ValueError:  # valid signature over a body that is not JSON
            return Reply(400, {"error": "body is not JSON"})
        webhook_id = headers["webhook-id"]
        if webhook_id in self.deliveries:
            self.duplicates += 1
            return Reply(200, {"received": True, "duplicate": True})
        if self.rejected([payload]):
            return Reply(400, {"error": "payload refused by the receiver"})
        self.deliveries[webhook_id] = payload
        return Reply(200, {"received": True})
