"""Transaction CSV reader: the real CDNOW files, a hand-written file of every fault, mapping validation."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow.compute as pc
import pytest

from loaders.batch import EVENT_SCHEMA, PROFILE_SCHEMA, QUARANTINE_SCHEMA, Batch
from loaders.transactions import MappingError, find_mapping, load_mapping, read_transactions

PROJECT = Path(__file__).resolve().parent.parent
MAPPINGS = PROJECT / "loaders" / "mappings"
CDNOW = PROJECT / "tests" / "data" / "cdnow"
MASTER = CDNOW / "CDNOW_master.txt"
SAMPLE = CDNOW / "CDNOW_sample.txt"


def amounts(batch: Batch) -> list[Decimal]:
    """Amounts as exact decimals: the JSON text holds the shortest repr, so Decimal parses what was written."""
    return [json.loads(text, parse_float=Decimal)["Amount"] for text in batch.events.column("evt_data").to_pylist()]


def reconciles(batch: Batch) -> bool:
    accounted = batch.events.num_rows + batch.profiles.num_rows + batch.duplicates_in_batch + batch.quarantine.num_rows
    return accounted == batch.input_records


def write_mapping(tmp_path: Path, text: str, name: str = "shop.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- CDNOW, the real files -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def master() -> Batch:
    # Speed is measured by `make bench`, never asserted in a test (shared, noisy machines).
    return read_transactions(MASTER, "transactions/CDNOW_master.txt", load_mapping(MAPPINGS / "cdnow_master.yml"))


def test_cdnow_master_loads_every_purchase(master: Batch) -> None:
    batch = master
    assert batch.events.schema.equals(EVENT_SCHEMA)
    assert batch.profiles.schema.equals(PROFILE_SCHEMA) and batch.profiles.num_rows == 0
    assert batch.quarantine.schema.equals(QUARANTINE_SCHEMA) and batch.quarantine.num_rows == 0
    assert batch.input_records == batch.events.num_rows == 69_659
    assert batch.duplicates_in_batch == 0
    assert pc.count_distinct(batch.events.column("identity")).as_py() == 23_570
    assert pc.count_distinct(batch.events.column("event_key")).as_py() == 69_659
    assert set(batch.events.column("event_name").to_pylist()) == {"Charged"}
    assert batch.events.column("object_id").null_count == 69_659


def test_cdnow_master_amount_total_to_the_cent(master: Batch) -> None:
    batch = master
    raw_lines = MASTER.read_text(encoding="utf-8").splitlines()[1:]
    expected = sum((Decimal(line.split()[3]) for line in raw_lines if line.strip()), Decimal(0))
    assert sum(amounts(batch), Decimal(0)) == expected


def test_cdnow_master_first_event(master: Batch) -> None:
    first = master.events.slice(0, 1).to_pylist()[0]
    assert first["identity"] == "00001"  # leading zeros kept: the id is text
    assert first["event_ts"] == datetime(1997, 1, 1)
    assert json.loads(first["evt_data"]) == {"Amount": 11.77, "Quantity": 1}
    assert first["evt_data"] == '{"Amount":11.77,"Quantity":1}'
    assert first["source_line"] == 2  # the header is line 1
    assert first["event_id"] is None
    assert first["event_key"].startswith("txn:") and len(first["event_key"]) == 4 + 64


def test_cdnow_identical_purchases_both_load(master: Batch) -> None:
    """Two identical lines are two purchases: keys come from the position, not the values."""
    batch = master
    lines = MASTER.read_text(encoding="utf-8").splitlines()
    repeated = [line for line, n in Counter(lines[1:]).items() if n > 1]
    assert repeated, "CDNOW_master.txt is known to repeat lines"
    numbers = [i + 1 for i, line in enumerate(lines) if line == repeated[0]]
    loaded = set(batch.events.column("source_line").to_pylist())
    assert len(numbers) >= 2 and set(numbers) <= loaded


def test_cdnow_sample_without_header() -> None:
    mapping = load_mapping(MAPPINGS / "cdnow_sample.yml")
    batch = read_transactions(SAMPLE, "transactions/CDNOW_sample.txt", mapping)
    non_blank = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert batch.events.num_rows == batch.input_records == len(non_blank)
    assert batch.quarantine.num_rows == 0
    first = batch.events.slice(0, 1).to_pylist()[0]
    assert first["source_line"] == 1
    assert first["identity"] == "00004"  # master_id, not sample_id
    assert json.loads(first["evt_data"]) == {"Amount": 29.33, "Quantity": 2, "Sample ID": "0001"}


# --- a hand-written file with every kind of fault ---------------------------------------------------------

SHOP_MAPPING = """\
files: "orders_*.csv"
delimiter: ","
header: true
customer: customer
date: purchased_on
date_format: "%Y-%m-%d"
amount: amount
quantity: qty
order_id: order_id
properties:
  Store: store
"""

SHOP_LINES = [
    b"order_id,customer,purchased_on,amount,qty,store",  # 1 header
    b"A1,c001,2024-03-01,19.99,2,web",  # 2 loaded
    b"A2, 007 ,2024-03-01,5.00,1,shop",  # 3 loaded, identity "007"
    b"A1,c001,2024-03-01,19.99,2,web",  # 4 duplicate order id
    b"A3,c002,2024-03-02,abc,1,web",  # 5 bad amount
    b"",  # 6 blank: not a record
    b"A4,c003,2024-13-45,3.50,1,web",  # 7 bad date
    b"A5,c004,2024-03-03",  # 8 short row
    b',c005,2024-03-04,7.25,,"Shop, Main St"',  # 9 loaded: no order id, no quantity, quoted comma
    b"A6,,2024-03-04,1.00,1,web",  # 10 missing customer
    b'A7,c006,2024-03-05,2.00,1,"unterminated',  # 11 bad quoting
    b"A8,c\xff07,2024-03-05,1.00,1,web",  # 12 invalid UTF-8
    b"A9,c007,2024-03-05,1.00,1.5,web",  # 13 bad quantity
    b"   ",  # 14 blank (spaces only)
]

EXPECTED_QUARANTINE = [
    (5, "bad_amount: column amount 'abc' is not a number"),
    (7, "bad_date: column purchased_on '2024-13-45' does not match %Y-%m-%d"),
    (8, "wrong_column_count: expected 6 fields, got 3"),
    (10, "missing_customer: column customer is empty"),
    (11, "bad_quoting: unexpected end of data"),
    (12, "invalid_utf8: byte 0xff at position 4 is not valid UTF-8"),
    (13, "bad_quantity: column qty '1.5' is not a whole number"),
]


@pytest.fixture()
def shop(tmp_path: Path) -> Batch:
    data = tmp_path / "orders_2024-03.csv"
    data.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(SHOP_LINES) + b"\r\n")  # BOM, CRLF
    mapping = load_mapping(write_mapping(tmp_path, SHOP_MAPPING))
    return read_transactions(data, "transactions/orders_2024-03.csv", mapping)


def test_faulty_lines_are_quarantined_with_line_and_reason(shop: Batch) -> None:
    rows = shop.quarantine.to_pylist()
    assert [(r["source_line"], r["reason"]) for r in rows] == EXPECTED_QUARANTINE
    assert {r["record_type"] for r in rows} == {"transaction"}
    assert rows[0]["raw_text"] == "A3,c002,2024-03-02,abc,1,web"  # the line as written, without CR
    assert rows[5]["raw_text"] == "A8,c\\xff07,2024-03-05,1.00,1,web"  # undecodable bytes shown, not dropped


def test_faulty_file_reconciles(shop: Batch) -> None:
    assert shop.input_records == 11  # lines 2-13 but the blank line 6; the header and blank lines are not records
    assert shop.events.num_rows == 3
    assert shop.duplicates_in_batch == 1
    assert shop.quarantine.num_rows == 7
    assert reconciles(shop)


def test_good_lines_of_faulty_file(shop: Batch) -> None:
    events = shop.events.to_pylist()
    assert [e["source_line"] for e in events] == [2, 3, 9]
    assert [e["identity"] for e in events] == ["c001", "007", "c005"]
    assert [e["event_id"] for e in events] == ["A1", "A2", None]
    assert events[0]["event_key"] == "order:A1"
    assert events[2]["event_key"].startswith("txn:")
    assert events[0]["event_ts"] == datetime(2024, 3, 1)
    assert json.loads(events[0]["evt_data"]) == {"Amount": 19.99, "Quantity": 2, "Charged ID": "A1", "Store": "web"}
    assert json.loads(events[2]["evt_data"]) == {"Amount": 7.25, "Store": "Shop, Main St"}


def test_position_key_depends_on_file_and_line(tmp_path: Path) -> None:
    """Same values on two lines → two keys; the same file delivered again → the same keys."""
    data = tmp_path / "orders_x.csv"
    data.write_text("customer,purchased_on,amount\nc1,2024-01-01,5\nc1,2024-01-01,5\n", encoding="utf-8")
    mapping = load_mapping(
        write_mapping(
            tmp_path,
            'files: "orders_*.csv"\ndelimiter: ","\nheader: true\ncustomer: customer\ndate: purchased_on\n'
            'date_format: "%Y-%m-%d"\namount: amount\n',
        )
    )
    first = read_transactions(data, "transactions/orders_x.csv", mapping).events.column("event_key").to_pylist()
    again = read_transactions(data, "transactions/orders_x.csv", mapping).events.column("event_key").to_pylist()
    assert len(set(first)) == 2 and first == again


def test_timestamps_with_offsets_become_naive_utc(tmp_path: Path) -> None:
    data = tmp_path / "t.tsv"
    data.write_text("c1\t2024-01-01T01:30:00+0200\t3\n", encoding="utf-8")
    mapping = load_mapping(
        write_mapping(
            tmp_path,
            'files: "*.tsv"\ndelimiter: "\\t"\nheader: false\ncolumns: [cust, at, total]\ncustomer: cust\n'
            'date: at\ndate_format: "%Y-%m-%dT%H:%M:%S%z"\namount: total\n',
        )
    )
    batch = read_transactions(data, "transactions/t.tsv", mapping)
    assert batch.events.column("event_ts").to_pylist() == [datetime(2023, 12, 31, 23, 30)]


def test_empty_file_is_an_empty_batch(tmp_path: Path) -> None:
    data = tmp_path / "CDNOW_master_empty.txt"
    data.write_bytes(b"")
    batch = read_transactions(data, "transactions/CDNOW_master_empty.txt", load_mapping(MAPPINGS / "cdnow_master.yml"))
    assert batch.input_records == batch.events.num_rows == batch.quarantine.num_rows == 0


MINIMAL_MAPPING = """\
files: "orders_*.csv"
delimiter: ","
header: true
customer: customer
date: day
date_format: "%Y-%m-%d"
amount: amount
"""


def read_csv_text(tmp_path: Path, text: str, mapping: str = MINIMAL_MAPPING) -> Batch:
    data = tmp_path / "orders_t.csv"
    data.write_text(text, encoding="utf-8")
    return read_transactions(data, "transactions/orders_t.csv", load_mapping(write_mapping(tmp_path, mapping)))


@pytest.mark.parametrize(
    ("text", "expected"), [("12", 12.0), ("-3.50", -3.5), ("+5", 5.0), (".5", 0.5), ("5.", 5.0), ("1e3", 1000.0)]
)
def test_amounts_accepted(tmp_path: Path, text: str, expected: float) -> None:
    batch = read_csv_text(tmp_path, f"customer,day,amount\nc1,2024-01-01,{text}\n")
    assert json.loads(batch.events.column("evt_data")[0].as_py()) == {"Amount": expected}


@pytest.mark.parametrize("text", ["nan", "inf", "1_000", '"1,5"', "$5", "", "12 EUR"])
def test_amounts_rejected(tmp_path: Path, text: str) -> None:
    batch = read_csv_text(tmp_path, f"customer,day,amount\nc1,2024-01-01,{text}\n")
    shown = text.strip('"')
    assert batch.quarantine.column("reason").to_pylist() == [f"bad_amount: column amount '{shown}' is not a number"]


def test_header_after_blank_lines_and_lf_only(tmp_path: Path) -> None:
    batch = read_csv_text(tmp_path, "\n  \ncustomer,day,amount\nc1,2024-01-01,1\n\nc2,2024-01-02,2")
    assert batch.events.column("source_line").to_pylist() == [4, 6]  # no newline after the last line: still read
    assert batch.input_records == 2


def test_text_values_become_valid_json(tmp_path: Path) -> None:
    mapping = MINIMAL_MAPPING + 'order_id: order\nproperties:\n  Note "quoted": note\n  Städte: city\n'
    note = 'He said ""hi"" \\ tab\there'  # CSV-quoted: "" is one quote
    batch = read_csv_text(
        tmp_path, f'customer,day,amount,order,note,city\nc1,2024-01-01,1,"o\\1","{note}",Köln\n', mapping
    )
    assert batch.quarantine.num_rows == 0
    assert json.loads(batch.events.column("evt_data")[0].as_py()) == {
        "Amount": 1.0,
        "Charged ID": "o\\1",
        'Note "quoted"': 'He said "hi" \\ tab\there',
        "Städte": "Köln",
    }
    assert batch.events.column("event_key").to_pylist() == ["order:o\\1"]


def test_values_over_512_bytes_are_quarantined(tmp_path: Path) -> None:
    mapping = MINIMAL_MAPPING + "properties:\n  Note: note\n"
    batch = read_csv_text(tmp_path, f"customer,day,amount,note\nc1,2024-01-01,1,{'é' * 300}\n", mapping)
    assert batch.quarantine.column("reason").to_pylist() == ["value_too_long: column note has 600 bytes > 512"]


def test_quarantined_order_does_not_claim_its_id(tmp_path: Path) -> None:
    """The first line of order A1 is bad: the second, good one is the order, not a duplicate."""
    mapping = MINIMAL_MAPPING + "order_id: order\n"
    batch = read_csv_text(tmp_path, "customer,day,amount,order\nc1,2024-01-01,x,A1\nc1,2024-01-01,5,A1\n", mapping)
    assert batch.events.column("source_line").to_pylist() == [3]
    assert batch.duplicates_in_batch == 0 and batch.quarantine.num_rows == 1


def test_header_only_file(tmp_path: Path) -> None:
    batch = read_csv_text(tmp_path, "customer,day,amount\r\n")
    assert batch.input_records == batch.events.num_rows == batch.quarantine.num_rows == 0


# --- finding the mapping for a file -------------------------------------------------------------------------


def test_find_mapping() -> None:
    mappings = [load_mapping(MAPPINGS / "cdnow_master.yml"), load_mapping(MAPPINGS / "cdnow_sample.yml")]
    assert find_mapping("transactions/CDNOW_master.txt", mappings) is mappings[0]
    assert find_mapping("CDNOW_sample.txt", mappings) is mappings[1]
    assert find_mapping("transactions/1998/CDNOW_master_q2.txt", mappings) is mappings[0]  # name-only glob
    assert find_mapping("transactions/orders.csv", mappings) is None


def test_find_mapping_refuses_two_matches(tmp_path: Path) -> None:
    master = load_mapping(MAPPINGS / "cdnow_master.yml")
    overlap = load_mapping(
        write_mapping(tmp_path, (MAPPINGS / "cdnow_master.yml").read_text().replace("CDNOW_master*", "CDNOW_*"))
    )
    with pytest.raises(MappingError, match="more than one transaction mapping") as error:
        find_mapping("transactions/CDNOW_master.txt", [master, overlap])
    assert str(tmp_path / "shop.yml") in str(error.value)


# --- mapping validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "hint"),
    [
        (('delimiter: ","', "delimiter: semicolons"), "'delimiter'", "whitespace"),
        (("customer: customer\n", ""), "'customer'", "is required"),
        (("header: true", "header: yes please"), "'header'", "true or false"),
        (("amount: amount", "ammount: amount"), "'ammount'", "allowed:"),
        (('date_format: "%Y-%m-%d"', "date_format: YYYY-MM-DD"), "'date_format'", "strptime"),
        (('date_format: "%Y-%m-%d"', 'date_format: "%Y-%Q"'), "'date_format'", "%Q"),
        (('files: "orders_*.csv"', "files: /abs/*.csv"), "'files'", "relative to the transactions/ folder"),
        (("header: true", "header: false"), "'columns'", "header is false"),
        (("  Store: store", "  Amount: store"), "'properties.Amount'", "reserved"),
    ],
)
def test_mapping_errors_name_file_and_field(tmp_path: Path, change: tuple[str, str], field: str, hint: str) -> None:
    old, new = change
    assert old in SHOP_MAPPING
    path = write_mapping(tmp_path, SHOP_MAPPING.replace(old, new))
    with pytest.raises(MappingError) as error:
        load_mapping(path)
    message = str(error.value)
    assert str(path) in message and field in message and hint in message, message


def test_mapping_column_missing_from_columns(tmp_path: Path) -> None:
    text = (MAPPINGS / "cdnow_sample.yml").read_text().replace("amount: dollar_value", "amount: dollars")
    path = write_mapping(tmp_path, text)
    with pytest.raises(MappingError, match=r"field 'amount' names column 'dollars', which is not in 'columns'"):
        load_mapping(path)


def test_mapping_column_missing_from_header(tmp_path: Path) -> None:
    data = tmp_path / "orders_1.csv"
    data.write_text("order_id,customer,purchased_on,total,qty,store\nA1,c1,2024-01-01,5,1,web\n", encoding="utf-8")
    path = write_mapping(tmp_path, SHOP_MAPPING)
    with pytest.raises(MappingError) as error:
        read_transactions(data, "transactions/orders_1.csv", load_mapping(path))
    message = str(error.value)
    assert str(path) in message and "field 'amount'" in message and "'amount'" in message
    assert "transactions/orders_1.csv" in message and "total" in message  # says what the header does have


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = write_mapping(tmp_path, "files: [unclosed\n")
    with pytest.raises(MappingError, match="cannot read the mapping") as error:
        load_mapping(path)
    assert str(path) in str(error.value)
