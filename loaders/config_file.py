"""The frame every YAML file that marketers and engineers edit shares: segments, funnels, audiences and
report subscriptions each hold one top-level key with a list of entries, and every entry is a mapping with
a snake_case `name`, unique across the files of its kind.

Each loader checks its own fields; this module reads the file and checks the frame, so every one of those
files fails the same way, with an error that names the file and the entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

# Names become dbt model names, table values and file names: lowercase, and short enough for Postgres'
# 63-character identifiers once prefixed.
NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
NAME_RULE = "snake_case (a-z, 0-9, _; at most 50)"


def read_entries(
    path: Path, key: str, kind: str, error: type[Exception], shown: str | None = None
) -> list[tuple[str, str, dict[str, Any]]]:
    """(where, name, entry) for every entry under `key:` in order; `where` is "<file>, <kind> #<n>".

    shown: how errors name the file (default: the path as given)."""
    shown = shown or str(path)
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise error(f"{shown}: not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise error(f"{shown}: must hold '{key}:' with a list of {kind} entries")
    entries = []
    for number, entry in enumerate(document[key], 1):
        where = f"{shown}, {kind} #{number}"
        if not isinstance(entry, dict):
            raise error(f"{where}: must be a mapping with a name and the {kind}'s fields")
        name = entry.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise error(f"{where}: field 'name' must be {NAME_RULE}, got {name!r}")
        entries.append((where, name, entry))
    return entries


def check_unique_names(named: Iterable[tuple[str, str]], kind: str, error: type[Exception]) -> None:
    """named: (name, where it is defined) pairs; the second use of a name is an error naming both places."""
    first: dict[str, str] = {}
    for name, source in named:
        if name in first:
            raise error(f"{source}, {kind} '{name}': the name is already used in {first[name]}")
        first[name] = source
