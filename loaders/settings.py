"""Where Rekindle reads and writes, from the public environment variables in DESIGN.md.

Read at call time, never at import time, so a DAG file that imports this module stays cheap and a
test can point a run at its own folders by setting the variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    landing: str
    warehouse: Path
    target: str
    out: Path

    @property
    def exports(self) -> Path:
        return self.out / "exports"

    @property
    def outbox(self) -> Path:
        return self.out / "outbox"


def _project_path(value: str) -> Path:
    """Relative paths are relative to the project root, so Airflow tasks (which run elsewhere) agree."""
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


def load_settings() -> Settings:
    landing = os.environ.get("REKINDLE_LANDING", "data/landing")
    if not landing.startswith("s3://"):
        landing = str(_project_path(landing))
    return Settings(
        landing=landing,
        warehouse=_project_path(os.environ.get("REKINDLE_WAREHOUSE", "warehouse/rekindle.duckdb")),
        target=os.environ.get("REKINDLE_TARGET", "duckdb"),
        out=_project_path(os.environ.get("REKINDLE_OUT", "out")),
    )


@dataclass(frozen=True)
class LoadOptions:
    """Loader settings; each has an environment variable so operators can tune a deployment."""

    # How far a record's ts may run ahead of the interval end (client clock skew).
    future_tolerance: timedelta = timedelta(hours=24)
    # Records older than this are bugs (epoch 0, a 1900 default), not history; CDNOW (1997) must pass.
    earliest_ts: datetime = datetime(1990, 1, 1)
    # Re-deliveries are looked for among rows this close in time to the batch's earliest record.
    dedup_lookback: timedelta = timedelta(days=3)

    @classmethod
    def from_env(cls) -> LoadOptions:
        return cls(
            future_tolerance=timedelta(hours=float(os.environ.get("REKINDLE_FUTURE_TOLERANCE_HOURS", "24"))),
            earliest_ts=datetime.fromisoformat(os.environ.get("REKINDLE_EARLIEST_TS", "1990-01-01")),
            dedup_lookback=timedelta(days=float(os.environ.get("REKINDLE_DEDUP_LOOKBACK_DAYS", "3"))),
        )


def clv_horizon_days() -> int:
    """REKINDLE_CLV_HORIZON_DAYS (default 90): the days ahead that CLV predicts purchases and value for.

    Read on its own, when the CLV step runs, so a bad value fails that step and not every task.
    """
    value = os.environ.get("REKINDLE_CLV_HORIZON_DAYS", "90")
    try:
        days = int(value)
    except ValueError:
        days = 0
    if days < 1:
        raise ValueError(f"REKINDLE_CLV_HORIZON_DAYS must be a whole number of days, 1 or more; got {value!r}")
    return days


def postgres_params(dbname: str | None = None) -> dict[str, str]:
    """libpq connection parameters from the REKINDLE_PG_* variables, with the defaults of
    dbt_project/profiles.yml, so the loaders, the CLV task and dbt reach the same database.

    The password is left out when unset or empty: an explicit '' would stop libpq from falling back to
    PGPASSWORD or ~/.pgpass.
    """
    params = {
        "host": os.environ.get("REKINDLE_PG_HOST", "127.0.0.1"),
        "port": os.environ.get("REKINDLE_PG_PORT", "5432"),
        "user": os.environ.get("REKINDLE_PG_USER", "postgres"),
        "dbname": dbname or os.environ.get("REKINDLE_PG_DATABASE", "rekindle"),
    }
    if os.environ.get("REKINDLE_PG_PASSWORD"):
        params["password"] = os.environ["REKINDLE_PG_PASSWORD"]
    return params


def postgres_schema() -> str:
    """The dbt profile's Postgres schema (REKINDLE_PG_SCHEMA): marts there, raw tables in `<schema>_raw`."""
    return os.environ.get("REKINDLE_PG_SCHEMA", "rekindle")
