"""`s3`: each batch as a CSV object under s3://<bucket>/<prefix>/<audience>/<run>/<action>-<digest>.csv.

Keys are run-addressed and content-addressed and written with `IfNoneMatch="*"`: S3 answers 412
PreconditionFailed when the key exists, which means an earlier attempt already wrote this batch, so a rerun
writes nothing new. boto3 retries throttling (503 Slow Down) with its own backoff ("standard" mode).
Credentials: the connection's login/password as the access key pair (or the usual AWS chain when empty),
`region_name` and `endpoint_url` extras (moto in the tests).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import ClassVar

from senders.destinations.base import BatchOutcome, Destination, DestinationError, Member, batch_digest


class S3Destination(Destination):
    kind: ClassVar[str] = "s3"
    max_batch_rows: ClassVar[int] = 1_000_000
    max_batch_bytes: ClassVar[int | None] = 5 * 1024 * 1024 * 1024  # a single PUT
    supports_remove: ClassVar[bool] = True
    default_channel: ClassVar[str] = "none"
    required_options: ClassVar[tuple[str, ...]] = ("bucket",)
    optional_options: ClassVar[tuple[str, ...]] = ("prefix",)
    uses_http: ClassVar[bool] = False

    def __init__(self, audience, credentials, http, run) -> None:
        super().__init__(audience, credentials, http, run)
        import boto3
        from botocore.config import Config

        self.client = boto3.client(
            "s3",
            aws_access_key_id=credentials.get("login") or None,
            aws_secret_access_key=credentials.get("password") or None,
            region_name=credentials.get("region_name") or "us-east-1",
            endpoint_url=credentials.get("endpoint_url") or None,
            config=Config(retries={"mode": "standard", "max_attempts": 6}),
        )
        self.written: list[str] = []
        self.already_there: list[str] = []

    def key(self, action: str, members: Sequence[Member]) -> str:
        prefix = str(self.audience.options.get("prefix", "rekindle/audiences")).strip("/")
        digest = batch_digest(action, members)[:16]
        return f"{prefix}/{self.audience.name}/{self.run.run_id}/{action}-{digest}.csv"

    def put(self, action: str, members: Sequence[Member]) -> BatchOutcome:
        from botocore.exceptions import BotoCoreError, ClientError

        columns = (
            ["user_id", *[f for f in self.audience.fields if f != "user_id"]] if action != "remove" else ["user_id"]
        )
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[m.user_id if c == "user_id" else m.fields.get(c) for c in columns] for m in members])
        key = self.key(action, members)
        bucket = self.audience.options["bucket"]
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue().encode(), IfNoneMatch="*")
            self.written.append(key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412"):
                self.already_there.append(key)
            else:
                raise DestinationError(f"s3 put s3://{bucket}/{key}: {code or type(exc).__name__}") from None
        except BotoCoreError as exc:
            raise DestinationError(f"s3 put s3://{bucket}/{key}: {type(exc).__name__}") from None
        return BatchOutcome(accepted=[m.user_id for m in members])

    def add(self, members: Sequence[Member]) -> BatchOutcome:
        return self.put("add" if self.audience.mode != "append" else "send", members)

    def remove(self, members: Sequence[Member]) -> BatchOutcome:
        return self.put("remove", members)
