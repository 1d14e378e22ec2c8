"""The S3 landing zone against a real HTTP endpoint: moto in server mode on loopback, no mocks of our code."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.client import BaseClient
from moto.server import ThreadedMotoServer

from loaders.landing import open_landing_zone
from loaders.s3 import S3LandingError, S3LandingZone, make_client

BUCKET = "landing"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def client(endpoint: str) -> BaseClient:
    """A client with dummy credentials, and a bucket laid out the way the tests below expect."""
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    s3.create_bucket(Bucket=BUCKET)
    for key in [
        "events/2026/11/01.jsonl",
        "events/2026/11/02.jsonl.gz",
        "events/2026/",  # a "folder" placeholder as the S3 console makes them
        "events/",
        "events2/outside.jsonl",  # shares the prefix's characters but not its folder
        "profiles/p.json",
    ]:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}\n")
    with ThreadPoolExecutor(16) as pool:  # 1,205 objects: past one 1,000-key listing page
        list(pool.map(lambda i: s3.put_object(Bucket=BUCKET, Key=f"many/f{i:04d}.jsonl", Body=b"x"), range(1205)))
    return s3


@pytest.mark.parametrize("url", ["s3://landing/events", "s3://landing/events/"])
def test_lists_keys_under_prefix_sorted_and_relative(client: BaseClient, url: str) -> None:
    zone = S3LandingZone.from_url(url, client=client)
    assert [f.relative_path for f in zone.list_files()] == ["2026/11/01.jsonl", "2026/11/02.jsonl.gz"]
    assert all(f.size == 3 for f in zone.list_files())
    assert zone.describe() == "s3://landing/events"


def test_lists_past_one_thousand_keys(client: BaseClient) -> None:
    files = S3LandingZone.from_url("s3://landing/many", client=client).list_files()
    assert [f.relative_path for f in files] == [f"f{i:04d}.jsonl" for i in range(1205)]


def test_empty_prefix_is_the_whole_bucket(client: BaseClient) -> None:
    paths = [f.relative_path for f in S3LandingZone.from_url("s3://landing", client=client).list_files()]
    assert len(paths) == 4 + 1205
    assert paths == sorted(paths)
    assert "events2/outside.jsonl" in paths and not any(p.endswith("/") for p in paths)


def test_local_copy_has_the_bytes_and_is_removed(client: BaseClient) -> None:
    body = gzip.compress(b"".join(json.dumps({"type": "event", "i": i}).encode() + b"\n" for i in range(500)))
    client.put_object(Bucket=BUCKET, Key="copy/2026/batch.jsonl.gz", Body=body)
    zone = S3LandingZone.from_url("s3://landing/copy", client=client)
    (file,) = zone.list_files()
    assert file.size == len(body)
    with zone.local_copy(file) as path:
        assert path.name == "batch.jsonl.gz"
        assert path.read_bytes() == body
    assert not path.exists() and not path.parent.exists()


def test_missing_bucket_says_what_to_check(client: BaseClient) -> None:
    zone = S3LandingZone.from_url("s3://no-such-bucket/events", client=client)
    with pytest.raises(S3LandingError, match=r"s3://no-such-bucket/events.*bucket does not exist.*REKINDLE_LANDING"):
        zone.list_files()


def test_object_gone_after_listing_says_so(client: BaseClient) -> None:
    client.put_object(Bucket=BUCKET, Key="gone/a.jsonl", Body=b"{}\n")
    zone = S3LandingZone.from_url("s3://landing/gone", client=client)
    (file,) = zone.list_files()
    client.delete_object(Bucket=BUCKET, Key="gone/a.jsonl")
    with pytest.raises(S3LandingError, match=r"s3://landing/gone/a.jsonl.*not found"), zone.local_copy(file):
        pass


@pytest.fixture
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """Leave boto3 no credentials of its own, so a request that succeeds must have used ours."""
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.delenv("REKINDLE_S3_CONN_ID", raising=False)
    return monkeypatch


def test_credentials_from_airflow_connection_env_var(
    client: BaseClient, endpoint: str, no_ambient_credentials: pytest.MonkeyPatch
) -> None:
    no_ambient_credentials.delenv("AWS_ENDPOINT_URL", raising=False)
    no_ambient_credentials.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    conn = {
        "conn_type": "aws",
        "login": "conn-access-key",
        "password": "conn-secret-key",
        "extra": {"endpoint_url": endpoint, "region_name": REGION},
    }
    no_ambient_credentials.setenv("AIRFLOW_CONN_REKINDLE_S3_TEST", json.dumps(conn))
    no_ambient_credentials.setenv("REKINDLE_S3_CONN_ID", "rekindle_s3_test")
    files = S3LandingZone.from_url("s3://landing/events", client=make_client()).list_files()
    assert [f.relative_path for f in files] == ["2026/11/01.jsonl", "2026/11/02.jsonl.gz"]


def test_credentials_from_aws_env_vars(
    endpoint: str, client: BaseClient, no_ambient_credentials: pytest.MonkeyPatch
) -> None:
    no_ambient_credentials.setenv("AWS_ACCESS_KEY_ID", "env-access-key")
    no_ambient_credentials.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-key")
    no_ambient_credentials.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    no_ambient_credentials.setenv("AWS_DEFAULT_REGION", REGION)
    zone = open_landing_zone("s3://landing/events")  # the loader's entry point, as REKINDLE_LANDING reaches it
    assert isinstance(zone, S3LandingZone)
    assert len(zone.list_files()) == 2


def test_no_credentials_says_where_to_put_them(endpoint: str, no_ambient_credentials: pytest.MonkeyPatch) -> None:
    no_ambient_credentials.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    no_ambient_credentials.setenv("AWS_DEFAULT_REGION", REGION)
    with pytest.raises(S3LandingError, match=r"no AWS credentials found.*REKINDLE_S3_CONN_ID"):
        S3LandingZone.from_url("s3://landing/events").list_files()


def test_unknown_connection_id_says_how_to_define_it(no_ambient_credentials: pytest.MonkeyPatch) -> None:
    no_ambient_credentials.setenv("REKINDLE_S3_CONN_ID", "rekindle_missing")
    no_ambient_credentials.delenv("AIRFLOW_CONN_REKINDLE_MISSING", raising=False)
    with pytest.raises(S3LandingError, match="AIRFLOW_CONN_REKINDLE_MISSING"):
        make_client()
