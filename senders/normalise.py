"""Normalise identifiers the way each destination documents, before hashing them for matching.

A hashed identifier matches only if both sides normalised it identically, so each rule below follows the
vendor's published normalisation, not our taste:

- Meta Custom Audiences ("Customer file custom audiences: hashing and normalization"): email trimmed and
  lower-cased; phone digits only with the country code, no `+`, no leading zeros; first/last name lower-cased
  letters only, no punctuation (UTF-8 letters kept); country the ISO 3166-1 alpha-2 code lower-cased.
- Google Data Manager ("Format user data"): email lower-cased with every whitespace removed and, for gmail.com
  and googlemail.com, the dots and any `+suffix` of the local part removed; phone E.164 with the leading `+`.
- SendGrid and Twilio take plain values: `email` and `phone_e164`.

Blank input (None, "", whitespace) gives None: the member simply has no such identifier. Input that cannot be
normalised raises `NormalisationError`, whose message describes the problem without repeating the value (it
is PII and ends up in logs).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# ITU-T E.164 country calling codes for the countries Rekindle's data uses and the most common others.
CALLING_CODES = {
    "US": "1", "CA": "1", "GB": "44", "DE": "49", "FR": "33", "ES": "34", "IT": "39", "NL": "31", "IE": "353",
    "SG": "65", "IN": "91", "AU": "61", "NZ": "64", "JP": "81", "BR": "55", "MX": "52", "ZA": "27", "AE": "971",
}  # fmt: skip
# Countries whose national numbers keep their leading 0 after the country code (no trunk prefix to drop).
_KEEPS_LEADING_ZERO = {"IT"}
_NANP = "1"  # North American Numbering Plan: 10-digit national numbers, trunk prefix 1
_E164_DIGITS = (8, 15)  # the same bounds as the warehouse's e164_phone macro
_EMAIL_MAX_CHARS = 254
_GOOGLE_CONSUMER_DOMAINS = {"gmail.com", "googlemail.com"}
_PHONE_PUNCTUATION = re.compile(r"[\s()\-./]")
# Fast paths for values that are already clean (most of a warehouse's): the checks below give the same answer
# for them, and the full checks still run, with their specific messages, for anything else.
PLAIN_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
E164 = re.compile(r"\+[1-9]\d{7,14}")


class NormalisationError(ValueError):
    """An identifier that cannot be normalised; the message never contains the value itself."""


def _blank(value: str | None) -> bool:
    return value is None or not str(value).strip()


def email(value: str | None) -> str | None:
    """Trimmed and lower-cased (Meta, SendGrid). Raises on anything that is not one local@domain.tld."""
    if _blank(value):
        return None
    address = str(value).strip().lower()
    _check_email(address)
    return address


def email_google(value: str | None) -> str | None:
    """Google's rule: lower-cased, every whitespace removed; for gmail.com/googlemail.com also the dots and
    any `+suffix` of the local part (cloudy.sf+shop@gmail.com -> cloudysf@gmail.com)."""
    if _blank(value):
        return None
    address = re.sub(r"\s+", "", str(value)).lower()
    _check_email(address)
    local, _, domain = address.partition("@")
    if domain in _GOOGLE_CONSUMER_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            raise NormalisationError("email address has nothing before the @ once dots and +suffix are removed")
        address = f"{local}@{domain}"
    return address


def _check_email(address: str) -> None:
    if len(address) <= _EMAIL_MAX_CHARS and PLAIN_EMAIL.fullmatch(address):
        return
    if len(address) > _EMAIL_MAX_CHARS:
        raise NormalisationError(f"email address is longer than {_EMAIL_MAX_CHARS} characters")
    if any(ch.isspace() for ch in address):
        raise NormalisationError("email address contains whitespace")
    local, at, domain = address.partition("@")
    if not at or not local or "@" in domain:
        raise NormalisationError("email address must have exactly one @ with text before it")
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels):
        raise NormalisationError("email domain must be a dotted name such as example.com")


def phone_e164(value: str | None, default_country: str | None = None) -> str | None:
    """E.164 with the leading `+` (Google, Twilio): `+` then the country code and the number, 8-15 digits.

    A number written internationally (`+44 20 7946 0000`, `+44 (0)20 …`, `0044 …`) keeps its country code.
    A national number needs `default_country` (ISO 3166-1 alpha-2, e.g. "US"): its trunk prefix (a leading
    0, or 1 in North America) is dropped and the country's calling code put in front."""
    if _blank(value):
        return None
    text = str(value).strip()
    if E164.fullmatch(text):
        return text
    if any(ch.isalpha() for ch in text):
        # Meta says "remove letters", but letters are extensions or vanity numbers: dropping them would
        # produce a different, wrong number. Refuse instead.
        raise NormalisationError("phone number contains letters (an extension or a vanity number)")
    international = text.startswith(("+", "00"))  # 00 is the international call prefix outside North America
    text = text.replace("(0)", "") if international else text
    compact = _PHONE_PUNCTUATION.sub("", text)
    if not re.fullmatch(r"\+?\d+", compact):
        raise NormalisationError("phone number contains characters other than digits, spaces, ()-./ and a leading +")
    digits = compact.lstrip("+")
    if international:
        if compact.startswith("00"):
            digits = compact[2:]
        number = digits
    else:
        if default_country is None:
            raise NormalisationError("phone number has no country code (+…) and no default country was given")
        country = default_country.strip().upper()
        code = CALLING_CODES.get(country)
        if code is None:
            raise NormalisationError(f"no calling code known for default country {default_country!r}")
        if code == _NANP:
            if len(digits) == 11 and digits.startswith("1"):
                digits = digits[1:]
            if len(digits) != 10:
                raise NormalisationError("a North American number needs 10 digits (or 11 starting with 1)")
        elif country not in _KEEPS_LEADING_ZERO and digits.startswith("0"):
            digits = digits[1:]
        number = code + digits
    low, high = _E164_DIGITS
    if not low <= len(number) <= high:
        raise NormalisationError(
            f"phone number has {len(number)} digits with its country code; E.164 needs {low}-{high}"
        )
    if number.startswith("0"):
        raise NormalisationError("a country code never starts with 0")
    return "+" + number


def phone_meta(value: str | None, default_country: str | None = None) -> str | None:
    """Meta's rule: digits only, with the country code, no `+` and no leading zeros (+1 (650) 555-0100 ->
    16505550100)."""
    e164 = phone_e164(value, default_country)
    return None if e164 is None else e164[1:]


def name_meta(value: str | None) -> str | None:
    """Meta's FN/LN rule: lower-cased, letters only (no spaces, punctuation or digits); accented and other
    UTF-8 letters are kept, in Unicode NFC so that é typed two ways hashes the same."""
    if _blank(value):
        return None
    text = str(value)
    if text.isascii():  # NFC changes nothing in ASCII, and filter runs in C
        letters = "".join(filter(str.isalpha, text.lower()))
    else:
        letters = "".join(ch for ch in unicodedata.normalize("NFC", text).lower() if ch.isalpha())
    if not letters:
        raise NormalisationError("name has no letters")
    return letters


def country_meta(value: str | None) -> str | None:
    """Meta's COUNTRY rule: the ISO 3166-1 alpha-2 code, lower-cased (" US " -> "us")."""
    if _blank(value):
        return None
    code = str(value).strip().lower()
    if not re.fullmatch(r"[a-z]{2}", code):
        raise NormalisationError("country must be a 2-letter ISO 3166-1 alpha-2 code such as US or GB")
    return code


def sha256_hex(value: str) -> str:
    """SHA-256 of the UTF-8 bytes, as 64 lowercase hex characters (what Meta and Google's HEX encoding take)."""
    if not isinstance(value, str):
        raise TypeError("sha256_hex takes a normalised string; normalise first and skip None")
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


# ---- the same rules in SQL, for the values the warehouse can decide ----------------------------------------
# A first sync hashes every member's email and phone, each a different value: the checks and SHA-256 in the
# warehouse cost about half of Python's per-value work (measured on DuckDB, 300,000 members). SQL takes only
# values made of printable ASCII, where Python's strip() and lower() are plain `trim` and `lower`; anything
# else, and any value these rules would refuse, gives
# NULL: "not decided here", and Python normalises that value as above. So the Python functions stay the one
# definition; tests/test_normalise.py holds the SQL to them on random values, on DuckDB and on Postgres.
# (No `?` or `%` in the SQL: the Postgres path turns them into placeholders.)

_SQL_PLAIN_EMAIL = r"[^@ ]+@[^@ .]+(\.[^@ .]+)+"  # PLAIN_EMAIL, for printable ASCII (whose only space is ' ')
_SQL_E164 = r"\+[1-9][0-9]{7,14}"


class SqlDialect:
    """The few functions whose spelling differs between DuckDB and Postgres."""

    def __init__(self, target: str) -> None:
        if target not in ("duckdb", "postgres"):
            raise ValueError(f"no SQL normalisation for warehouse target {target!r}")
        self.target = target

    def sha256_hex(self, text: str) -> str:
        if self.target == "duckdb":
            return f"sha256({text})"
        return f"encode(sha256(convert_to({text}, 'UTF8')), 'hex')"

    def full_match(self, text: str, pattern: str) -> str:
        if self.target == "duckdb":
            return f"regexp_full_match({text}, '{pattern}')"
        return f"({text} ~ '^({pattern})$')"


def _sql_decided(sql: SqlDialect, column: str, hashed: str) -> str:
    """NULL input is blank (''); a value outside printable ASCII is left to Python (NULL); else `hashed`."""
    return (
        f"case when {column} is null then '' when not {sql.full_match(column, '[ -~]*')} then null"
        f" when trim({column}) = '' then '' else {hashed} end"
    )


def _sql_letters(text: str) -> str:
    """name_meta's letters for printable ASCII: lower-cased, a-z only."""
    return f"regexp_replace(lower({text}), '[^a-z]', '', 'g')"


def _sql_hash_or_blank(sql: SqlDialect, clean: str) -> str:
    """'' for an empty normalised value (blank, or refused as having no letters), else its hash."""
    return f"case when {clean} = '' then '' else {sql.sha256_hex(clean)} end"


def meta_hash_sql(sql: SqlDialect, field: str, column: str) -> str | None:
    """SQL giving what MetaCustomAudience sends for `field` (the hex SHA-256 of the normalised value, '' for a
    blank or refused one) from the warehouse column `column`, or NULL where Python must decide. None: no SQL for
    the field. `first_name` and `last_name` take the profile's `name` column and split it as
    senders.sync.member_fields does (the first word, and the rest); `city` and `country` their own columns."""
    if field == "email":
        clean = f"lower(trim({column}))"
        ok = f"length({clean}) <= {_EMAIL_MAX_CHARS} and {sql.full_match(clean, _SQL_PLAIN_EMAIL)}"
        return _sql_decided(sql, column, f"case when {ok} then {sql.sha256_hex(clean)} end")
    if field == "phone":
        clean = f"trim({column})"
        ok = sql.full_match(clean, _SQL_E164)
        return _sql_decided(sql, column, f"case when {ok} then {sql.sha256_hex(f'substr({clean}, 2)')} end")
    if field in ("first_name", "last_name"):
        # Python: str(name).strip().partition(" "): the first word, and the rest stripped (printable ASCII's only
        # whitespace is ' ', which is all trim removes)
        name = f"trim({column})"
        part = (
            f"split_part({name}, ' ', 1)"
            if field == "first_name"
            else f"case when strpos({name}, ' ') > 0 then trim(substr({name}, strpos({name}, ' ') + 1)) else '' end"
        )
        return _sql_decided(sql, column, _sql_hash_or_blank(sql, _sql_letters(part)))
    if field == "city":
        return _sql_decided(sql, column, _sql_hash_or_blank(sql, _sql_letters(column)))
    if field == "country":
        clean = f"lower(trim({column}))"
        code = f"case when {sql.full_match(clean, '[a-z]{2}')} then {sql.sha256_hex(clean)} else '' end"
        return _sql_decided(sql, column, code)
    return None
