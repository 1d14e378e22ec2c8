"""The S3 landing zone: `REKINDLE_LANDING=s3://bucket/prefix`, read with boto3.

How credentials and the endpoint are found (`make_client`):

1. `REKINDLE_S3_CONN_ID` set: the Airflow connection of that id, looked up through `airflow.sdk.BaseHook`, so
   it works inside a task (the API server's connections) and outside one (`AIRFLOW_CONN_<ID>` environment
   variables, secrets backends). `login` is the access key id, `password` the secret access key; `extra` may
   hold `endpoint_url` (MinIO, moto, ...), `region_name` and `aws_session_token`.
2. Otherwise boto3's own chain: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`,
   `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3`, `AWS_DEFAULT_REGION`, then `~/.aws` files and instance roles.

Secrets are never logged; only the connection id and the endpoint are.

Why boto3 and not DuckDB's httpfs: DuckDB extensions cannot be downloaded at run time on these machines.
Objects are downloaded to a temporary file and parsed by the same code as a local landing zone.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import boto3
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from loaders.landing import LandingFile

log = logging.getLogger(__name__)

CONN_ID_ENV = "REKINDLE_S3_CONN_ID"


class S3LandingError(RuntimeError):
    """S3 refused or could not serve the landing zone; the message says what to check."""


def make_client(conn_id: str | None = None) -> BaseClient:
    """An S3 client from the Airflow connection `conn_id` (default `$REKINDLE_S3_CONN_ID`) or boto3's chain."""
    conn_id = conn_id or os.environ.get(CONN_ID_ENV) or None
    if not conn_id:
        log.info("S3 client from boto3's default credential chain (AWS_* environment variables, ~/.aws)")
        # A fresh session, not boto3's module-level default: that one caches the first credentials it finds
        # and is not thread-safe.
        return boto3.session.Session().client("s3")

    # Imported here: Airflow is heavy to import and not needed when boto3's chain is used.
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        raise S3LandingError(
            f"{CONN_ID_ENV}={conn_id}: no Airflow connection with that id; create it in the Airflow UI, with "
            f"`airflow connections add`, or as the environment variable AIRFLOW_CONN_{conn_id.upper()}"
        ) from exc
    extra = conn.extra_dejson or {}
    endpoint_url = extra.get("endpoint_url") or None
    log.info("S3 client from Airflow connection %r (endpoint %s)", conn_id, endpoint_url or "AWS default")
    return boto3.session.Session().client(
        "s3",
        aws_access_key_id=conn.login or None,
        aws_secret_access_key=conn.password or None,
        aws_session_token=extra.get("aws_session_token") or None,
        endpoint_url=endpoint_url,
        region_name=extra.get("region_name") or None,
    )


class S3LandingZone:
    """Every object under `s3://bucket/prefix`, listed and downloaded one at a time."""

    def __init__(self, bucket: str, prefix: str, client: BaseClient) -> None:
        self.bucket = bucket
        # Normalised to "" or "a/b/" so "s3://b/a" does not also match "a2/..." and relative paths have no "/".
        stripped = prefix.strip("/")
        self.prefix = f"{stripped}/" if stripped else ""
        self.client = client

    @classmethod
    def from_url(cls, url: str, client: BaseClient | None = None) -> S3LandingZone:
        """Parse `s3://bucket[/prefix]`; without a client, build one with `make_client()`."""
        if not url.startswith("s3://"):
            raise ValueError(f"{url!r} is not an S3 URL; expected s3://bucket/prefix")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"{url!r} names no bucket; expected s3://bucket/prefix")
        return cls(bucket, prefix, client if client is not None else make_client())

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.rstrip('/')}"

    def list_files(self) -> list[LandingFile]:
        """Every object under the prefix, sorted by relative path; "folder/" placeholders and hidden files
        (".name", e.g. a writer's temp file) are skipped."""
        paginator = self.client.get_paginator("list_objects_v2")
        files: list[LandingFile] = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for obj in page.get("Contents", []):
                    key: str = obj["Key"]
                    if key.endswith("/") or key.rsplit("/", 1)[-1].startswith("."):
                        continue  # folder placeholders; hidden files, as the local zone skips them
                    files.append(LandingFile(relative_path=key[len(self.prefix) :], size=int(obj["Size"])))
        except (ClientError, BotoCoreError) as exc:
            raise _actionable(exc, f"listing {self.describe()}") from exc
        return sorted(files, key=lambda f: f.relative_path)

    @contextmanager
    def local_copy(self, file: LandingFile) -> Iterator[Path]:
        """Download one object to a temporary directory (removed on exit), keeping its file name.

        The name is kept so suffix-based dispatch (`.jsonl.gz`, `.json`) works as on a local zone;
        `download_file` streams to disk, so a large object never sits in memory.
        """
        key = self.prefix + file.relative_path
        with tempfile.TemporaryDirectory(prefix="rekindle-s3-") as tmp:
            target = Path(tmp) / PurePosixPath(file.relative_path).name
            try:
                self.client.download_file(self.bucket, key, str(target))
            except (ClientError, BotoCoreError) as exc:
                raise _actionable(exc, f"downloading s3://{self.bucket}/{key}") from exc
            yield target


def _actionable(exc: ClientError | BotoCoreError, action: str) -> S3LandingError:
    """Turn a botocore error into one sentence a data engineer can act on (the cause stays chained)."""
    creds = f"the Airflow connection in {CONN_ID_ENV}, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
    if isinstance(exc, NoCredentialsError):
        hint = f"no AWS credentials found; set {CONN_ID_ENV} to an Airflow connection or set {creds}"
    elif isinstance(exc, EndpointConnectionError):
        hint = f"cannot reach the S3 endpoint; check AWS_ENDPOINT_URL or the connection's endpoint_url ({exc})"
    elif isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            hint = "the bucket does not exist; check the bucket name in REKINDLE_LANDING and the endpoint / region"
        elif code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"} or status == 403:
            hint = f"access denied ({code}); check {creds}, and that they allow s3:ListBucket and s3:GetObject"
        elif code in {"NoSuchKey", "404"} or status == 404:
            hint = "not found; the object or its bucket was removed after listing, or the bucket name is wrong"
        else:
            hint = f"S3 answered {code or status}: {error.get('Message', '')}"
    else:
        hint = str(exc)
    return S3LandingError(f"{action} failed: {hint}")
