"""Connections as Airflow reads them from the environment: URI and JSON forms, and the base URL they give."""

from __future__ import annotations

import json

import pytest

from senders.credentials import MissingConnection, base_url, resolve


def test_uri_form_with_escaped_secret_and_extras(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SG", "http://apikey:SG.a%2Fb%40c@api.example.com:8443/v3?list=x&base_url=")
    creds = resolve("sg")
    assert (creds["login"], creds["password"], creds["host"], creds["port"]) == (
        "apikey",
        "SG.a/b@c",
        "api.example.com",
        "8443",
    )
    assert creds["list"] == "x"
    assert base_url(creds, "https://api.sendgrid.com") == "http://api.example.com:8443"


def test_json_form_and_base_url_extra(monkeypatch):
    extra = {"base_url": "http://127.0.0.1:9999/", "region_name": "eu-west-1"}
    monkeypatch.setenv("AIRFLOW_CONN_META", json.dumps({"conn_type": "generic", "password": "tok", "extra": extra}))
    creds = resolve("meta")
    assert creds["password"] == "tok" and creds["region_name"] == "eu-west-1"
    assert base_url(creds, "https://graph.facebook.com") == "http://127.0.0.1:9999"
    assert base_url({"host": ""}, "https://graph.facebook.com") == "https://graph.facebook.com"


def test_a_broken_connection_names_the_variable_not_the_secret(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BAD", '{"password": "s3cret", ')
    with pytest.raises(MissingConnection) as error:
        resolve("bad")
    assert "AIRFLOW_CONN_BAD" in str(error.value) and "s3cret" not in str(error.value)


def test_an_unknown_connection_says_how_to_define_it(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NOPE_NOT_HERE", raising=False)
    with pytest.raises(MissingConnection, match="set AIRFLOW_CONN_NOPE_NOT_HERE"):
        resolve("nope_not_here")
