"""`braze`: audience membership as a custom attribute on Braze user profiles (`POST /users/track`).

Each member gets `{"external_id": user_id, "<attribute>": true}` plus the audience's fields as attributes;
removal sets the attribute to false. Attributes are idempotent, so a retried batch changes nothing. At most
75 attribute objects a request. A 201/200 with `errors` is a partial failure: Braze names the failed
objects by `index` in the request, which maps back to the member.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from senders.destinations.base import BatchOutcome, Destination, Member


class Braze(Destination):
    kind: ClassVar[str] = "braze"
    max_batch_rows: ClassVar[int] = 75
    max_batch_bytes: ClassVar[int | None] = 4 * 1000 * 1000
    supports_remove: ClassVar[bool] = True
    modes: ClassVar[tuple[str, ...]] = ("mirror", "upsert")
    default_channel: ClassVar[str] = "email"
    optional_options: ClassVar[tuple[str, ...]] = ("attribute",)
    identifier_fields: ClassVar[tuple[str, ...]] = ("user_id",)
    default_base_url: ClassVar[str] = "https://rest.iad-01.braze.com"

    @classmethod
    def auth_headers(cls, credentials: Mapping[str, str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {credentials.get('password', '')}"}

    @property
    def attribute(self) -> str:
        return str(self.audience.options.get("attribute") or f"in_audience_{self.audience.name}")

    def track(self, attributes: list[dict], members: Sequence[Member]) -> BatchOutcome:
        answer = self.http.request("POST", "/users/track", json={"attributes": attributes}).json()
        rejected: dict[str, str] = {}
        unattributed = 0
        for error in answer.get("errors") or []:
            index = error.get("index") if isinstance(error, dict) else None
            if isinstance(index, int) and 0 <= index < len(members):
                rejected[members[index].user_id] = f"Braze: {error.get('type', 'error')}"
            else:
                unattributed += 1
        return BatchOutcome(
            accepted=[m.user_id for m in members if m.user_id not in rejected],
            rejected=rejected,
            unattributed_failures=unattributed,
        )

    def add(self, members: Sequence[Member]) -> BatchOutcome:
        attributes = [
            {"external_id": m.user_id, **{k: v for k, v in m.fields.items() if k != "user_id"}, self.attribute: True}
            for m in members
        ]
        return self.track(attributes, members)

    def remove(self, members: Sequence[Member]) -> BatchOutcome:
        return self.track([{"external_id": m.user_id, self.attribute: False} for m in members], members)
