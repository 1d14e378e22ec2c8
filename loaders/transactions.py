"""Transaction CSV files → `Charged` events, described by a small mapping file.

Purchase exports (a shop's order table, a billing system's CSV, the CDNOW data set) land in the landing
zone's `transactions/` folder. Each family of files gets one YAML mapping that says how to read it; every
data line becomes one CleverTap `Charged` event of the customer, or a quarantine row with a reason.

Mapping format (reference; examples in `loaders/mappings/`)::

    # loaders/mappings/shop_orders.yml
    files: "orders_*.csv"          # glob, relative to the landing zone's transactions/ folder (see below)
    delimiter: ","                 # ","  ";"  "|"  "\\t" (or: tab)  whitespace (runs of spaces/tabs)
    header: true                   # true: the first non-blank line names the columns
    # columns: [order, cust, day, total]   # only with header: false, names the fields left to right
    customer: cust_id              # column → identity (text; leading zeros are kept)
    date: ordered_at               # column → ts
    date_format: "%Y-%m-%d"        # strptime codes; a date alone is UTC midnight; without %z, UTC
    amount: total                  # column → evtData.Amount (number)
    quantity: items                # optional: column → evtData.Quantity (whole number)
    order_id: order_no             # optional: column → eventId and evtData["Charged ID"]
    properties:                    # optional: evtData property name → column, copied as text
      Store: store_name
      Payment mode: payment

Every value under `customer`, `date`, `amount`, `quantity`, `order_id` and `properties` is a column name:
a name from the header line, or from `columns` when the file has none. `date_format` takes the strptime
codes (%Y %m %d %H %M %S %f %b %p %z ...) as DuckDB's strptime reads them; %z takes +HH:MM or +HHMM, and
such instants are converted to UTC. `files` follows the .gitignore rule: a pattern without "/" matches
the file name in any folder under transactions/ (`CDNOW_master*.txt` matches
`transactions/1998/CDNOW_master.txt`); a pattern with "/" matches the whole path below transactions/
(`eu/*.csv`, where `*` also crosses folders). At most one mapping may match a file.

Reading rules, so that nothing is lost silently (input = events + duplicates + quarantined):
- One physical line is one record; blank lines are not records. CRLF line ends and a UTF-8 BOM are fine.
  `source_line` is the 1-based physical line number; the header is the first non-blank line (line 1).
- Fields are stripped of surrounding spaces. With a character delimiter, fields may be quoted CSV-style
  ("Shop, Main St"); a quoted field cannot span lines. `whitespace` does not interpret quotes.
- A line is quarantined (record_type `transaction`) with the first problem found, as "<code>: <detail>":
  invalid_utf8, bad_quoting, wrong_column_count, missing_customer, bad_date, bad_amount (a plain decimal
  number such as 12, -3.50 or 1e3 is expected: no currency signs, thousands separators, NaN), bad_quantity
  (a whole number), value_too_long (order id or property over CleverTap's 512 bytes). Blank quantity,
  order id or property values are simply left out of evtData.
- Key: with an order id, event_key = "order:<id>" and later lines of the same file with that id are
  counted as duplicates; so map `order_id` only when it identifies one line (in a line-item export, one
  line per product, leave it out, or the later items of each order are dropped). Without an order id,
  event_key = "txn:" + sha256("<source_file>:<line>"): the position, not the values, because two
  identical purchases on one day are two purchases (CDNOW repeats 215 lines), while re-delivering the
  same file still deduplicates in the warehouse.

A mapping that cannot be read, or that names a column the file's header does not have, raises
`MappingError` naming the mapping file and the field: that is a configuration fault, not bad data.

Reading is bulk (Arrow and one DuckDB query, see below): CDNOW's 69,659 lines take about 0.15 s, a
million lines about 1-2 s and 0.8 GB of memory at the peak.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from loaders.batch import EVENT_SCHEMA, PROFILE_SCHEMA, QUARANTINE_SCHEMA, Batch
from loaders.records import MAX_KEY_CHARS, MAX_VALUE_BYTES

EVENT_NAME = "Charged"
RECORD_TYPE = "transaction"
WHITESPACE = "whitespace"
DELIMITERS = {",": ",", ";": ";", "|": "|", "\t": "\t", "\\t": "\t", "tab": "\t", WHITESPACE: WHITESPACE}
FIELDS = (
    "files",
    "delimiter",
    "header",
    "columns",
    "customer",
    "date",
    "date_format",
    "amount",
    "quantity",
    "order_id",
    "properties",
)
BATCH_SCHEMAS = (EVENT_SCHEMA, PROFILE_SCHEMA, QUARANTINE_SCHEMA)
RESERVED_PROPERTIES = ("Amount", "Quantity", "Charged ID")
BOM = b"\xef\xbb\xbf"


class MappingError(ValueError):
    """A mapping file is unusable, or does not fit the file it was applied to; names file and field."""


@dataclass(frozen=True)
class TransactionMapping:
    """One validated mapping file (the format is in the module docstring); build it with `load_mapping`."""

    source: Path  # the mapping file itself, named in every error
    files: str
    delimiter: str  # one character, or "whitespace"
    header: bool
    columns: tuple[str, ...] | None  # only when header is False
    customer: str
    date: str
    date_format: str
    amount: str
    quantity: str | None = None
    order_id: str | None = None
    properties: dict[str, str] = field(default_factory=dict)  # evtData property name → column

    def role_columns(self) -> dict[str, str]:
        """Mapping field → column it names, for checking the columns exist ("properties.Store" for extras)."""
        roles = {"customer": self.customer, "date": self.date, "amount": self.amount}
        if self.quantity:
            roles["quantity"] = self.quantity
        if self.order_id:
            roles["order_id"] = self.order_id
        for name, column in self.properties.items():
            roles[f"properties.{name}"] = column
        return roles


# --- the mapping file ---------------------------------------------------------------------------------


def load_mapping(path: Path) -> TransactionMapping:
    """Read and validate one mapping file; every error names the file and the field at fault."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: cannot read the mapping: {exc}") from None
    if not isinstance(document, dict):
        raise MappingError(f"{path}: a mapping must be a YAML object with fields {', '.join(FIELDS)}")
    unknown = sorted(str(key) for key in document if key not in FIELDS)
    if unknown:
        raise MappingError(f"{path}: unknown field '{unknown[0]}' (allowed: {', '.join(FIELDS)})")

    files = _files(document.get("files"), path)  # checked in the order the format lists them
    delimiter = _delimiter(document.get("delimiter"), path)
    header = document.get("header")
    if not isinstance(header, bool):
        raise MappingError(f"{path}: field 'header' must be true or false, got {header!r}")
    columns = _columns(document.get("columns"), header, path)
    mapping = TransactionMapping(
        source=Path(path),
        files=files,
        delimiter=delimiter,
        header=header,
        columns=columns,
        customer=_column_name(document, "customer", path, required=True),
        date=_column_name(document, "date", path, required=True),
        date_format=_date_format(document.get("date_format"), path),
        amount=_column_name(document, "amount", path, required=True),
        quantity=_column_name(document, "quantity", path, required=False),
        order_id=_column_name(document, "order_id", path, required=False),
        properties=_properties(document.get("properties"), path),
    )
    if columns is not None:
        for role, column in mapping.role_columns().items():
            if column not in columns:
                raise MappingError(
                    f"{path}: field '{role}' names column {column!r}, which is not in 'columns' ({', '.join(columns)})"
                )
    return mapping


def _files(value: Any, path: Path) -> str:
    if not isinstance(value, str) or not value.strip() or value.startswith("/") or ".." in value.split("/"):
        raise MappingError(
            f"{path}: field 'files' must be a glob relative to the transactions/ folder, e.g. 'orders_*.csv', "
            f"got {value!r}"
        )
    return value.strip()


def _delimiter(value: Any, path: Path) -> str:
    if value not in DELIMITERS:
        raise MappingError(
            f"{path}: field 'delimiter' must be one of ',' ';' '|' '\\t' (or tab) or whitespace, got {value!r}"
        )
    return DELIMITERS[value]


def _columns(value: Any, header: bool, path: Path) -> tuple[str, ...] | None:
    """Column names are given only for files without a header line, and must be unique."""
    if header:
        if value is not None:
            raise MappingError(f"{path}: field 'columns' is only for files without a header (header: false)")
        return None
    if not isinstance(value, list) or not value or not all(isinstance(c, str) and c.strip() for c in value):
        raise MappingError(
            f"{path}: field 'columns' must list the column names left to right when header is false, got {value!r}"
        )
    names = tuple(c.strip() for c in value)
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise MappingError(f"{path}: field 'columns' names {repeated[0]!r} more than once")
    return names


def _column_name(document: dict[str, Any], name: str, path: Path, required: bool) -> str | None:
    value = document.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        need = "is required and must" if required else "must"
        raise MappingError(f"{path}: field '{name}' {need} name a column of the file, got {value!r}")
    return value.strip()


def _date_format(value: Any, path: Path) -> str:
    """Ask DuckDB, which parses the dates, so a typo ("%Q", no directive at all) fails here, not on every line."""
    if not isinstance(value, str) or "%" not in value:
        raise MappingError(f"{path}: field 'date_format' must be a strptime format such as '%Y%m%d', got {value!r}")
    try:
        with duckdb.connect() as con:
            con.sql(f"select try_strptime('', {_lit(value)})").fetchall()
    except duckdb.Error as exc:
        raise MappingError(f"{path}: field 'date_format' {value!r} is not a usable strptime format: {exc}") from None
    return value


def _properties(value: Any, path: Path) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MappingError(f"{path}: field 'properties' must map evtData property names to columns, got {value!r}")
    properties: dict[str, str] = {}
    for name, column in value.items():
        where = f"{path}: field 'properties.{name}'"
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_KEY_CHARS:
            raise MappingError(f"{where}: a property name must be text of 1 to {MAX_KEY_CHARS} characters")
        if name in RESERVED_PROPERTIES:
            raise MappingError(f"{where}: {name!r} is set by the loader (reserved: {', '.join(RESERVED_PROPERTIES)})")
        if not isinstance(column, str) or not column.strip():
            raise MappingError(f"{where} must name a column of the file, got {column!r}")
        properties[name] = column.strip()
    return properties


def find_mapping(relative_path: str, mappings: list[TransactionMapping]) -> TransactionMapping | None:
    """The mapping whose `files` glob matches a file, None when none does.

    `relative_path` is "/"-separated, relative to the landing zone ("transactions/1998/x.csv") or to its
    transactions/ folder ("1998/x.csv"). Two matching mappings raise: silently picking one would read a
    file with a mapping its author may not have meant for it.
    """
    below = relative_path.removeprefix("transactions/")
    name = below.rsplit("/", 1)[-1]
    matches = [m for m in mappings if fnmatchcase(below if "/" in m.files else name, m.files)]
    if len(matches) > 1:
        sources = ", ".join(str(m.source) for m in matches)
        raise MappingError(f"{relative_path}: more than one transaction mapping matches it ({sources})")
    return matches[0] if matches else None


# --- reading a file -----------------------------------------------------------------------------------
#
# Bulk, in three steps: Arrow cuts the text into numbered lines and the lines into fields (in C++, and
# every line keeps its physical number); one DuckDB query types, judges and keys every line and builds the
# evtData JSON, sorted so that the events and the quarantine are slices of its result. Python looks at
# single lines only where the bulk path cannot: bytes that are not UTF-8, and lines with CSV quotes.

WS = " \t\r\x0b\x0c"  # blank around a field, and what a blank line is made of
NUMBER = r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"
WHOLE_NUMBER = r"[+-]?\d+"
OVERRIDE_SCHEMA = pa.schema([("n", pa.int64()), ("fields", pa.list_(pa.string())), ("problem", pa.string())])


@dataclass(frozen=True)
class _Layout:
    """Where each mapped column sits in a line (1-based, as DuckDB lists are), resolved once per file."""

    width: int
    names: tuple[str, ...]
    positions: dict[str, int]  # mapping field ("customer", "properties.Store", ...) → position

    def name(self, role: str) -> str:
        return self.names[self.positions[role] - 1]


def _layout(names: tuple[str, ...], mapping: TransactionMapping, source_file: str) -> _Layout:
    """Resolve column names to positions; a name the file lacks is a MappingError naming the field."""
    positions: dict[str, int] = {}
    for role, column in mapping.role_columns().items():
        found = [i for i, name in enumerate(names, start=1) if name == column]
        if not found:
            origin = "the header of " + source_file if mapping.header else "'columns'"
            raise MappingError(
                f"{mapping.source}: field '{role}' names column {column!r}, which is not in {origin} "
                f"(columns: {', '.join(names)})"
            )
        if len(found) > 1:
            raise MappingError(
                f"{mapping.source}: field '{role}' names column {column!r}, which appears {len(found)} times in "
                f"the header of {source_file}"
            )
        positions[role] = found[0]
    return _Layout(width=len(names), names=names, positions=positions)


def _decode(data: bytes) -> tuple[str, dict[int, str]]:
    """The file's text (no BOM, LF line ends), and the reason for each line number that is not UTF-8.

    The whole file decodes in one call when it is valid, as it nearly always is; otherwise each line is
    tried, and a bad line stays in the text with its bad bytes shown as \\xNN, for the quarantine.
    """
    data = data.removeprefix(BOM).replace(b"\r\n", b"\n")
    try:
        return data.decode("utf-8"), {}
    except UnicodeDecodeError:
        pass
    texts: list[str] = []
    bad: dict[int, str] = {}
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            texts.append(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            byte = line[exc.start : exc.start + 1].hex()
            bad[number] = f"invalid_utf8: byte 0x{byte} at position {exc.start} is not valid UTF-8"
            texts.append(line.decode("utf-8", "backslashreplace"))
    return "\n".join(texts), bad


def _numbered_lines(text: str) -> pa.Table:
    """The non-blank lines (n, line), n being the 1-based physical line number."""
    lines = pc.split_pattern(pa.array([text], pa.large_string()), pattern="\n").flatten()
    numbers = pc.cumulative_sum(pa.repeat(1, len(lines)))  # 1, 2, 3, ...
    return pa.table({"n": numbers, "line": lines}).filter(pc.not_equal(pc.utf8_trim(lines, WS), ""))


def _split_line(line: str, delimiter: str) -> list[str]:
    """Python's reading of one line (the header, and lines with quotes); may raise csv.Error."""
    if delimiter == WHITESPACE:
        return line.split()
    return [field.strip() for field in next(csv.reader((line,), delimiter=delimiter, strict=True))]


def _split_fields(lines: pa.Table, delimiter: str) -> pa.Array:
    """Every line's fields, untrimmed (the query trims what it uses)."""
    if delimiter == WHITESPACE:
        return pc.utf8_split_whitespace(pc.utf8_trim(lines.column("line"), WS))
    return pc.split_pattern(lines.column("line"), pattern=delimiter)


def _overrides(lines: pa.Table, delimiter: str, bad_utf8: dict[int, str]) -> pa.Table:
    """Lines whose fields come from Python instead: undecodable lines (no fields, a problem) and, with a
    character delimiter, lines with quotes, read CSV-style (a quote left open is a problem)."""
    rows: list[tuple[int, list[str] | None, str | None]] = [(n, None, reason) for n, reason in bad_utf8.items()]
    if delimiter != WHITESPACE:
        quoted = lines.filter(pc.match_substring(lines.column("line"), '"'))
        for number, line in zip(quoted.column("n").to_pylist(), quoted.column("line").to_pylist(), strict=True):
            if number in bad_utf8:
                continue
            try:
                rows.append((number, _split_line(line, delimiter), None))
            except csv.Error as exc:
                rows.append((number, None, f"bad_quoting: {exc}"))
    return pa.Table.from_pylist([dict(zip(OVERRIDE_SCHEMA.names, r, strict=True)) for r in rows], OVERRIDE_SCHEMA)


def _lit(text: str) -> str:
    """A SQL string literal: column names and formats come from files, so they are quoted, never pasted."""
    return "'" + text.replace("'", "''") + "'"


def _judge_sql(mapping: TransactionMapping, layout: _Layout, source_file: str) -> str:
    """One query over tables `data` (n, line, fields) and `overrides`: every line → its event columns, or
    the reason it is quarantined. The CASE is the specification of the reasons: the first failing check
    names the problem."""

    def text(role: str | None) -> str:  # a mapped field, trimmed, NULL when blank or beyond the line's end
        return f"nullif(trim(fields[{layout.positions[role]}], {_lit(WS)}), '')" if role else "null::varchar"

    def column(role: str) -> str:
        return _lit(layout.name(role))

    fmt = mapping.date_format
    ts = f"try_strptime(date_text, {_lit(fmt)})"
    if "%z" in fmt or "%Z" in fmt:
        ts = f"timezone('UTC', {ts})"  # an instant with an offset → naive UTC
    # Text values copied into evtData, each as a SQL alias: the order id and the extra properties.
    texts = {"order_id": "order_id"} if mapping.order_id else {}
    texts |= {f"properties.{name}": f"prop_{i}" for i, name in enumerate(mapping.properties)}
    extra = [f"{text(role)} as {alias}" for role, alias in texts.items() if role != "order_id"]
    too_long = [
        f"when strlen({alias}) > {MAX_VALUE_BYTES} then 'value_too_long: column ' || {column(role)} || ' has ' "
        f"|| strlen({alias}) || ' bytes > {MAX_VALUE_BYTES}'"
        for role, alias in texts.items()
    ]
    # evtData: concat_ws skips NULLs, so a blank value leaves its key out; to_json quotes and escapes text.
    evt_data = ["'\"Amount\":' || to_json(amount)", "'\"Quantity\":' || to_json(quantity)"]
    evt_data += ["'\"Charged ID\":' || to_json(order_id)"]
    evt_data += [
        f"{_lit(json.dumps(name, ensure_ascii=False) + ':')} || to_json(prop_{i})"
        for i, name in enumerate(mapping.properties)
    ]
    duplicate = (
        "order_id is not null and reason is null and row_number() over (partition by order_id, reason is null "
        "order by n) > 1"
        if mapping.order_id
        else "false"
    )
    return f"""
        with merged as (
            select n, line, overrides.problem, coalesce(overrides.fields, data.fields) as fields
            from data left join overrides using (n)
        ),
        picked as (
            select n, line, problem, len(fields) as width,
                {text("customer")} as customer,
                coalesce({text("date")}, '') as date_text,
                coalesce({text("amount")}, '') as amount_text,
                {text("quantity" if mapping.quantity else None)} as quantity_text,
                {text("order_id" if mapping.order_id else None)} as order_id
                {"".join(", " + e for e in extra)}
            from merged
        ),
        typed as (
            select *,
                {ts} as ts,
                case when regexp_full_match(amount_text, {_lit(NUMBER)}) then try_cast(amount_text as double) end
                    as amount,
                case when regexp_full_match(quantity_text, {_lit(WHOLE_NUMBER)})
                    then try_cast(quantity_text as bigint) end as quantity
            from picked
        ),
        judged as (
            select *, case
                when problem is not null then problem
                when width <> {layout.width} then 'wrong_column_count: expected {layout.width} fields, got ' || width
                when customer is null then 'missing_customer: column ' || {column("customer")} || ' is empty'
                when ts is null then 'bad_date: column ' || {column("date")} || ' ''' || date_text
                    || ''' does not match ' || {_lit(fmt)}
                when amount is null or not isfinite(amount) then 'bad_amount: column ' || {column("amount")}
                    || ' ''' || amount_text || ''' is not a number'
                when quantity_text is not null and quantity is null then 'bad_quantity: column '
                    || {column("quantity") if mapping.quantity else "''"} || ' ''' || quantity_text
                    || ''' is not a whole number'
                {" ".join(too_long)}
            end as reason
            from typed
        )
        select
            n,
            reason,
            case when reason is not null then line end as raw_text,
            {duplicate} as duplicate,
            case when order_id is null then 'txn:' || sha256({_lit(source_file + ":")} || n)
                 else 'order:' || order_id end as event_key,
            order_id as event_id,
            {_lit(EVENT_NAME)} as event_name,
            ts as event_ts,
            customer as identity,
            null::varchar as object_id,
            '{{' || concat_ws(',', {", ".join(evt_data)}) || '}}' as evt_data,
            n as source_line
        from judged
        order by reason is not null, duplicate, n  -- events, then duplicates, then the quarantine: slices
    """


def read_transactions(path: Path, source_file: str, mapping: TransactionMapping) -> Batch:
    """Parse one transaction file into a Batch of `Charged` events and quarantined lines.

    `source_file` is the file's path relative to the landing zone; it seeds the keys of lines without an
    order id. Raises MappingError when the mapping names a column the file's header does not have.
    """
    text, bad_utf8 = _decode(Path(path).read_bytes())
    lines = _numbered_lines(text)
    del text
    names = mapping.columns or ()
    if mapping.header:
        if lines.num_rows == 0:
            return Batch(source_file, 0, *(schema.empty_table() for schema in BATCH_SCHEMAS))
        header = lines.slice(0, 1).to_pylist()[0]
        try:
            names = tuple(_split_line(header["line"], mapping.delimiter))
        except csv.Error:
            names = (header["line"].strip(),)  # reported below as the columns it lacks
        lines = lines.slice(1)
        bad_utf8.pop(header["n"], None)
    layout = _layout(names, mapping, source_file)
    data = lines.append_column("fields", _split_fields(lines, mapping.delimiter))
    overrides = _overrides(lines, mapping.delimiter, bad_utf8)
    with duckdb.connect() as con:
        con.register("data", data)
        con.register("overrides", overrides)
        judged = con.sql(_judge_sql(mapping, layout, source_file)).to_arrow_table()
    return _batch(source_file, judged, data.num_rows)


def _batch(source_file: str, judged: pa.Table, records: int) -> Batch:
    """The judged lines, sorted events | duplicates | quarantined, cut into the Batch (slices, not copies)."""
    rejected = pc.sum(pc.is_valid(judged.column("reason"))).as_py() or 0
    duplicates = pc.sum(judged.column("duplicate")).as_py() or 0
    accepted = judged.num_rows - rejected - duplicates
    quarantine = judged.slice(accepted + duplicates)
    return Batch(
        source_file=source_file,
        input_records=records,
        events=judged.slice(0, accepted).select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA),
        profiles=PROFILE_SCHEMA.empty_table(),
        quarantine=pa.table(
            {
                "source_line": quarantine.column("n"),
                "record_type": pa.repeat(RECORD_TYPE, rejected),
                "reason": quarantine.column("reason"),
                "raw_text": quarantine.column("raw_text"),
            }
        ).cast(QUARANTINE_SCHEMA),
        duplicates_in_batch=duplicates,
    )
