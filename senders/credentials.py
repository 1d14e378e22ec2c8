"""Credentials from Airflow Connections: `conn_id` in an audience, never a secret in the YAML.

The `AIRFLOW_CONN_<CONN_ID>` environment variable Airflow reads is parsed here first, in URI or JSON form,
so the CLI and tests need no Airflow. Otherwise, inside an Airflow task (Airflow's task runner is loaded),
Airflow resolves the id (`airflow.sdk.BaseHook.get_connection`: secrets backends, the metadata database).
The values are returned to the destination only: never logged, never in an exception message.
"""

from __future__ import annotations

import json
import os
import sys
from urllib.parse import parse_qsl, unquote, urlsplit


class MissingConnection(LookupError):
    pass


def _from_uri(uri: str) -> dict[str, str]:
    parts = urlsplit(uri)
    values = {
        "conn_type": parts.scheme.replace("-", "_"),
        "login": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "host": unquote(parts.hostname or ""),
        "port": str(parts.port or ""),
        "schema": unquote(parts.path.lstrip("/")),
    }
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "__extra__" in query:
        values.update({k: str(v) for k, v in json.loads(query.pop("__extra__")).items()})
    values.update(query)
    return values


def _from_json(text: str) -> dict[str, str]:
    document = json.loads(text)
    extra = document.pop("extra", None) or {}
    if isinstance(extra, str):
        extra = json.loads(extra)
    values = {k: "" if v is None else str(v) for k, v in document.items()}
    values.update({k: str(v) for k, v in extra.items()})
    return values


def resolve(conn_id: str) -> dict[str, str]:
    """login, password, host, port, schema, conn_type and every extra key of the connection, as strings."""
    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = os.environ.get(variable)
    if raw is not None:
        try:
            return _from_json(raw) if raw.lstrip().startswith("{") else _from_uri(raw)
        except (ValueError, TypeError) as exc:
            # The value holds secrets: name the variable and the kind of problem, not the text.
            raise MissingConnection(
                f"{variable} is neither an Airflow connection URI nor JSON ({type(exc).__name__})"
            ) from None
    if "airflow.sdk.execution_time.task_runner" not in sys.modules:
        # Not inside an Airflow task: Airflow's lookup would search its metadata database and secrets backends
        # for a minute before saying what the environment already says.
        raise MissingConnection(f"no connection {conn_id!r}: set {variable} (URI or JSON), or run inside Airflow")
    try:
        from airflow.sdk import BaseHook

        connection = BaseHook.get_connection(conn_id)
    except Exception as exc:  # not inside Airflow, or Airflow does not know the id
        raise MissingConnection(
            f"no Airflow Connection {conn_id!r}: define it in Airflow or set {variable} (URI or JSON)"
            f" ({type(exc).__name__})"
        ) from None
    values = {
        "conn_type": connection.conn_type or "",
        "login": connection.login or "",
        "password": connection.password or "",
        "host": connection.host or "",
        "port": str(connection.port or ""),
        "schema": connection.schema or "",
    }
    values.update({k: str(v) for k, v in (connection.extra_dejson or {}).items()})
    return values


def base_url(credentials: dict[str, str], default: str) -> str:
    """Where the API lives: the connection's `base_url` extra, else its host (with scheme and port), else
    the vendor's public URL. Tests point a destination at a local fake this way."""
    if credentials.get("base_url"):
        return credentials["base_url"].rstrip("/")
    host = credentials.get("host", "")
    if not host:
        return default
    if host.startswith(("http://", "https://")):
        return host.rstrip("/")
    scheme = "http" if credentials.get("conn_type") == "http" else "https"
    port = f":{credentials['port']}" if credentials.get("port") else ""
    return f"{scheme}://{host}{port}"
