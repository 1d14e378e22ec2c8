"""Golden cases for the identifier normalisers: each vendor's documented rule, input by input."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from senders.destinations.meta_custom_audience import MetaCustomAudience
from senders.normalise import (
    NormalisationError,
    SqlDialect,
    country_meta,
    email,
    email_google,
    meta_hash_sql,
    name_meta,
    phone_e164,
    phone_meta,
    sha256_hex,
)
from senders.sync import member_fields


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("john.doe@example.com", "john.doe@example.com"),
        ("  John.Doe@Example.COM ", "john.doe@example.com"),  # Meta: trim, lower-case
        ("\tuser.name+NYC@Example.com\n", "user.name+nyc@example.com"),  # plus and dots kept outside Gmail
        ("cloudy.sanfrancisco+shopping@gmail.com", "cloudy.sanfrancisco+shopping@gmail.com"),  # Meta keeps them
        (None, None),
        ("   ", None),
    ],
)
def test_email_trims_and_lowercases(raw: str | None, expected: str | None) -> None:
    assert email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Google's own examples ("Format user data"): dots and +suffix go only for gmail.com/googlemail.com.
        ("cloudy.sanfrancisco+shopping@gmail.com", "cloudysanfrancisco@gmail.com"),
        ("user.name+NYC@Example.com", "user.name+nyc@example.com"),
        ("Dana.M@GoogleMail.com", "danam@googlemail.com"),
        (" alex j@example.com ", "alexj@example.com"),  # intermediate whitespace removed too
        ("", None),
    ],
)
def test_email_google_applies_the_gmail_rule(raw: str, expected: str | None) -> None:
    assert email_google(raw) == expected


@pytest.mark.parametrize(
    "raw", ["no-at-sign.example.com", "two@@example.com", "a@b@example.com", "@example.com", "a@localhost", "a@x..com"]
)
def test_malformed_email_is_refused_without_echoing_it(raw: str) -> None:
    with pytest.raises(NormalisationError) as err:
        email(raw)
    assert raw not in str(err.value)  # PII never reaches a log through an error message


def test_email_longer_than_254_characters_is_refused() -> None:
    with pytest.raises(NormalisationError, match="254"):
        email("a" * 250 + "@example.com")
    with pytest.raises(NormalisationError, match="whitespace"):
        email("a b@example.com")  # Meta only trims the ends; an inner space is not an address


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+1 (650) 555-0100", None, "+16505550100"),
        ("+16505550100", None, "+16505550100"),
        ("(650) 555-0100", "US", "+16505550100"),  # national number, North America
        ("1-650-555-0100", "us", "+16505550100"),  # NANP trunk prefix 1 dropped, country case-insensitive
        ("650.555.0100", "CA", "+16505550100"),
        ("+44 (0)20 7946 0000", None, "+442079460000"),  # the UK's "(0)" trunk written internationally
        ("020 7946 0000", "GB", "+442079460000"),  # national trunk 0 dropped
        ("0044 20 7946 0000", None, "+442079460000"),  # 00 international prefix
        ("030 1234567", "DE", "+49301234567"),
        ("06 6982 1234", "IT", "+390669821234"),  # Italy keeps its leading 0
        ("0412 345 678", "AU", "+61412345678"),
        ("  ", "US", None),
    ],
)
def test_phone_e164_keeps_the_plus_and_country_code(raw: str, country: str | None, expected: str | None) -> None:
    assert phone_e164(raw, default_country=country) == expected


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+1 (650) 555-0100", None, "16505550100"),  # Meta: digits only, country code, no +
        ("(650) 555-0100", "US", "16505550100"),
        ("+44 (0)20 7946 0000", None, "442079460000"),  # no leading zeros
        (None, "US", None),
    ],
)
def test_phone_meta_is_digits_with_country_code_and_no_plus(
    raw: str | None, country: str | None, expected: str
) -> None:
    assert phone_meta(raw, default_country=country) == expected


@pytest.mark.parametrize(
    ("raw", "country", "problem"),
    [
        ("6505550100", None, "no country code"),
        ("555-0100", "US", "10 digits"),
        ("+1 650 555 0100 x12", None, "letters"),
        ("1-800-FLOWERS", "US", "letters"),
        ("+12345", None, "8-15"),
        ("+1234567890123456", None, "8-15"),
        ("+0 650 555 0100", None, "never starts with 0"),
        ("650#555#0100", "US", "characters other than digits"),
        ("+1 650 +555 0100", None, "characters other than digits"),
        ("20 7946 0000", "XX", "no calling code"),
    ],
)
def test_phone_that_cannot_be_e164_is_refused(raw: str, country: str | None, problem: str) -> None:
    with pytest.raises(NormalisationError, match=problem):
        phone_e164(raw, default_country=country)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Mary-Jane", "maryjane"),  # Meta: lower-case, no punctuation
        ("  O'Neil ", "oneil"),
        ("Van Der Berg", "vanderberg"),
        ("Zoë", "zoë"),  # UTF-8 letters kept
        ("Zoe\u0308", "zoë"),  # the same name typed with a combining diaeresis hashes the same (NFC)
        ("Dr. Kenji", "drkenji"),
        ("", None),
    ],
)
def test_name_meta_is_lowercase_letters_only(raw: str, expected: str | None) -> None:
    assert name_meta(raw) == expected


def test_name_without_letters_is_refused() -> None:
    with pytest.raises(NormalisationError, match="no letters"):
        name_meta("123 -")


@pytest.mark.parametrize(("raw", "expected"), [("US", "us"), (" gb ", "gb"), ("De", "de"), (None, None)])
def test_country_meta_is_lowercase_iso_alpha2(raw: str | None, expected: str | None) -> None:
    assert country_meta(raw) == expected


@pytest.mark.parametrize("raw", ["USA", "United States", "u", "1a"])
def test_country_that_is_not_alpha2_is_refused(raw: str) -> None:
    with pytest.raises(NormalisationError, match="alpha-2"):
        country_meta(raw)


def test_sha256_hex_matches_the_standard_vectors() -> None:
    # FIPS 180-2 test vectors: independent of our code and of hashlib's.
    assert sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_normalise_then_hash_gives_the_same_hash_for_every_spelling() -> None:
    """What matching depends on: every spelling of one person hashes to the one value the vendor computes."""
    john = "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f"  # sha256("john.doe@example.com")
    assert {
        sha256_hex(email(s)) for s in ["john.doe@example.com", " JOHN.DOE@example.com", "John.Doe@Example.Com "]
    } == {john}
    meta_phone = "43b63f22d478442e6d58c9ba5eef8a8b378b9990aafb681d11e231e3ceab6294"  # sha256("16505550100")
    assert {sha256_hex(phone_meta(s, "US")) for s in ["+1 (650) 555-0100", "650-555-0100", "16505550100"]} == {
        meta_phone
    }
    google_phone = "1967dd8f4b44678ba10eaff05f8ceabcc7268d481f2a637b3dc75d85f3199244"  # sha256("+16505550100")
    assert sha256_hex(phone_e164("(650) 555-0100", "US")) == google_phone


def test_sha256_hex_refuses_none() -> None:
    with pytest.raises(TypeError):
        sha256_hex(None)  # type: ignore[arg-type]


# ---- the SQL twin (normalise.meta_hash_sql): the warehouse hashes what it can decide, exactly as Python would ----

# the fields meta_hash_sql decides (field -> the dim_users column it comes from: first and last name split `name`)
SQL_FIELDS = {"email": "email", "phone": "phone", "first_name": "name", "last_name": "name", "city": "city",
              "country": "country"}  # fmt: skip
# Values that exercise both sides of every rule: plain ASCII the SQL decides, and whitespace, Unicode letters and
# digits, and separators that it must leave to Python.
pieces = st.text(alphabet="aZ9 .@+-'()" + "\t\n\x1f\u00a0\u2028é\u0308İßﬁ٣Ⅻ", max_size=6)
emails = st.builds(lambda a, b, c: f"{a}@{b}.{c}", pieces, pieces, pieces)
digits = st.text(alphabet="0123456789", min_size=6, max_size=17)
phones = st.builds(lambda pad, number, tail: f"{pad}+{number}{tail}", st.sampled_from(["", " ", "\t"]), digits,
                   st.sampled_from(["", " ", "x", "٣"]))  # fmt: skip
names = st.builds(lambda a, b, c: f"{a} {b}{c}", pieces, pieces, st.sampled_from(["", " ", "  Lee", "\tx"]))
codes = st.sampled_from([" us ", "GB", "g b", "usa", "u1", "Ü", "gb\n"])
values = st.one_of(
    st.none(), pieces, emails, phones, names, codes, st.sampled_from([" a@b.co ", "+4479 0000 0001", "  ", ""])
)
COLUMNS = ("email", "phone", "name", "city", "country")
TABLE_COLUMNS = "i integer, " + ", ".join(f"{c} varchar" for c in COLUMNS)
rows = st.lists(st.fixed_dictionaries({c: values for c in COLUMNS}), min_size=1, max_size=25)


def python_hashes(row: dict) -> dict[str, str]:
    """What MetaCustomAudience sends for the row's fields, computed by the Python normalisers from the fields the
    sync builds (member_fields: first and last name from `name`)."""
    fields = member_fields(SimpleNamespace(fields=list(SQL_FIELDS)), row)
    return {field: MetaCustomAudience.hash_field(field, fields[field]) for field in SQL_FIELDS}


def sql_hashes(query, target: str, table: str) -> list[dict[str, str | None]]:
    sql = SqlDialect(target)
    exprs = [meta_hash_sql(sql, field, column) for field, column in SQL_FIELDS.items()]
    return [dict(zip(SQL_FIELDS, r, strict=True)) for r in query(f"select {', '.join(exprs)} from {table} order by i")]


def assert_sql_agrees(rows: list[dict], got: list[dict]) -> int:
    decided = 0
    for row, sql_row in zip(rows, got, strict=True):
        expected = python_hashes(row)
        for field, value in sql_row.items():
            if value is not None:  # None: left to Python
                assert value == expected[field], (field, row)
                decided += 1
    return decided


def test_sql_hashes_plain_values_as_the_python_normalisers_do() -> None:
    """Golden: the bench's kind of profile is decided in SQL, field by field, to the Python result."""
    import duckdb

    row = {"email": " Ann.Lee@Example.COM", "phone": "+447900000001", "name": "Ann1 de  Lee", "city": "St. Ives",
           "country": " GB"}  # fmt: skip
    con = duckdb.connect()
    con.execute(
        "create table t as select 0 as i, ?::varchar as email, ?::varchar as phone, ?::varchar as name,"
        " ?::varchar as city, ?::varchar as country",
        [row[c] for c in COLUMNS],
    )
    got = sql_hashes(lambda q: con.execute(q).fetchall(), "duckdb", "t")
    assert got == [python_hashes(row)]
    assert got[0] == {"email": sha256_hex("ann.lee@example.com"), "phone": sha256_hex("447900000001"),
                      "first_name": sha256_hex("ann"), "last_name": sha256_hex("delee"), "city": sha256_hex("stives"),
                      "country": sha256_hex("gb")}  # fmt: skip
    assert meta_hash_sql(SqlDialect("duckdb"), "gender", "gender") is None


@pytest.fixture(scope="module")
def duck():
    import duckdb

    con = duckdb.connect()
    con.execute(f"create table t ({TABLE_COLUMNS})")
    yield con
    con.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows)
def test_sql_hashes_agree_with_python_on_duckdb(duck, rows: list[dict]) -> None:
    duck.execute("delete from t")
    duck.executemany(
        "insert into t values (?, ?, ?, ?, ?, ?)", [[i, *(r[c] for c in COLUMNS)] for i, r in enumerate(rows)]
    )
    assert_sql_agrees(rows, sql_hashes(lambda q: duck.execute(q).fetchall(), "duckdb", "t"))


def test_sql_hashes_agree_with_python_on_postgres() -> None:
    import psycopg2
    from conftest import pg_params, throwaway_pg_database

    decided = 0
    with throwaway_pg_database("normalise") as dbname, psycopg2.connect(**pg_params(dbname)) as con:
        cur = con.cursor()
        cur.execute(f"create table t ({TABLE_COLUMNS})")

        def query(sql: str) -> list[tuple]:
            cur.execute(sql)
            return cur.fetchall()

        @settings(max_examples=60, deadline=None)
        @given(rows=rows)
        def check(rows: list[dict]) -> None:
            nonlocal decided
            cur.execute("truncate t")
            for i, r in enumerate(rows):
                cur.execute("insert into t values (%s, %s, %s, %s, %s, %s)", [i, *(r[c] for c in COLUMNS)])
            decided += assert_sql_agrees(rows, sql_hashes(query, "postgres", "t"))

        check()
        con.rollback()
    assert decided > 0  # the SQL decided values, not only left them to Python
