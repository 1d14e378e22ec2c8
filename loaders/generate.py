"""Deterministic sample-data generator for Rekindle's landing zone.

``python -m loaders.generate --users 20000 --days 30 --seed 42 --end 2026-10-31 --out data/landing``

It writes CleverTap's documented upload format, so the loaders exercise the same path real exports take.
The data covers the ``--days`` UTC days ending on ``--end`` (inclusive). Layout under ``OUT``:

``events/YYYY-MM-DD.jsonl.gz``
    One gzip file per UTC day of the event ``ts`` (every day of the range, possibly empty), one JSON record
    per line, in time order::

        {"type":"event","evtName":"Charged","ts":1730419200,"identity":"u42","objectId":"dev-0a1b2c3d",
         "eventId":"e-...","evtData":{...}}

    ``identity`` appears once the device's user has logged in (before that only ``objectId``); ``eventId``
    is on ~70% of records; ``ts`` is epoch seconds on ~90% and ISO-8601 with ``Z`` on ~10%.
    Deliberate noise is mixed in so the quarantine and the deduplication are never idle:
    ~0.2% bad lines (see ``BAD_KINDS``, each inserted right after the line it was derived from) and ~0.5%
    exact copies of an earlier line, either later in the same file or re-delivered in the next day's file.
    Apart from that noise, lines are in ``ts`` order.

``profiles/YYYY-MM-DD.json``
    ``{"d": [...]}`` with one profile record per line of the array. A push happens at every login of an
    identified user on a device (the first one is the user's first login) with the full current profile;
    ~5% of users later push a partial update (an opt-out of one channel and/or a new Plan or City).

``campaigns/campaigns.yml``
    Three campaigns (email, push, sms) whose start dates are scaled into the range. Campaign traffic is in
    the events files as ``Notification Sent|Viewed|Clicked``; control groups follow ``control_bucket``, and
    the ``GLOBAL_CONTROL_PCT`` system control group (``global_control_bucket``) receives no campaign.

Output is byte-identical for the same arguments: one ``random.Random(seed)`` drives everything, gzip
headers carry no mtime or file name, JSON is compact and every collection is iterated in a fixed order.
Files the generator writes are overwritten (atomically); other files in ``OUT`` are left alone.
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import hashlib
import json
import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

DAY = 86_400
HOUR = 3_600

Session = list[tuple[int, str, dict[str, Any]]]  # (ts, evtName, evtData) in time order

# Shares of the population and of the records; the docstring and the tests rely on these magnitudes.
IDENTIFIED_SHARE = 0.70
SECOND_DEVICE_SHARE = 0.10
SHARED_DEVICE_SHARE = 0.025  # per identified user's first device; about 1% of all devices end up shared
EXISTING_USER_SHARE = 0.55  # active from the first day of the range
CHURN_SHARE = 0.30
UNINSTALL_SHARE_OF_CHURNERS = 0.07  # ~2% of all users
PROFILE_UPDATE_SHARE = 0.05
EVENT_ID_SHARE = 0.70
ISO_TS_SHARE = 0.10
BAD_LINE_RATE = 0.002
DUPLICATE_RATE = 0.005
CONSENT_SHARES = {"MSG-email": 0.80, "MSG-sms": 0.50, "MSG-push": 0.60, "MSG-whatsapp": 0.25}

# Funnel: ~30% of sessions add to cart, ~30% of those check out.
CART_SESSION_SHARE = 0.30
CHECKOUT_SHARE = 0.30
# Extra chance of a goal purchase within the window, by the deepest step a target user reached.
# Modest on purpose: campaigns should lift conversion "somewhat" (tens of percent), not multiply it.
CAMPAIGN_UPLIFT = {"Notification Clicked": 0.35, "Notification Viewed": 0.06, "Notification Sent": 0.015}
VIEW_SHARE = 0.60
CLICK_SHARE_OF_VIEWERS = 0.15

# Sessions start in one of these UTC hours (plus up to an hour), so sessions of a device never overlap:
# a session lasts at most ~1 h (MAX_VIEWS views and carts, <= MAX_GAP s apart) and slots are 3 h apart.
SESSION_SLOT_HOURS = (1, 4, 7, 10, 13, 16, 19)
MAX_VIEWS = 12
MAX_CART_ITEMS = 3  # distinct products per order: keeps Items under CleverTap's 512-byte value limit
MIN_GAP, MAX_GAP = 5, 150

BAD_KINDS = (
    "invalid_json",  # a line cut short: not parseable
    "no_identifier",  # neither identity nor objectId
    "bad_ts",  # "ts":"yesterday"
    "unknown_type",  # "type":"pageview"
    "long_value",  # an evtData value longer than 512 bytes
    "long_key",  # an evtData key longer than 120 characters
    "missing_evt_name",  # no evtName
)

CATEGORIES = ("Electronics", "Fashion", "Home", "Beauty", "Sports", "Books", "Toys", "Grocery")
PAYMENT_MODES = ("Card", "UPI", "PayPal", "Wallet", "COD")
PLATFORMS = ("Android", "iOS", "Web")
APP_VERSIONS = ("3.1.0", "3.2.0", "3.2.1")
PLANS = ("free", "plus", "pro")
PLAN_WEIGHTS = (70, 20, 10)
# City -> ISO 3166-1 alpha-2 country, as CleverTap's Country profile field (and Meta's COUNTRY) expects.
CITY_COUNTRIES = {
    "San Francisco": "US",
    "New York": "US",
    "Chicago": "US",
    "Seattle": "US",
    "Austin": "US",
    "London": "GB",
    "Manchester": "GB",
    "Berlin": "DE",
    "Toronto": "CA",
    "Singapore": "SG",
    "Bengaluru": "IN",
    "Sydney": "AU",
}
CITIES = tuple(CITY_COUNTRIES)
FIRST_NAMES = {
    "F": ("Alice", "Maya", "Priya", "Sofia", "Emma", "Olivia", "Chen", "Fatima", "Grace", "Hana", "Isla"),
    "M": ("Bob", "Arjun", "Liam", "Noah", "Diego", "Kenji", "Omar", "Lucas", "Ethan", "Ravi", "Tom"),
}
LAST_NAMES = (
    "Smith",
    "Patel",
    "Garcia",
    "Kim",
    "Nguyen",
    "Johnson",
    "Okafor",
    "Rossi",
    "Müller",
    "Khan",
    "Brown",
    "Silva",
    "Tanaka",
    "Cohen",
    "Martin",
)
EMAIL_DOMAINS = ("example.com", "example.org", "mail.example.net")
US_AREA_CODES = (415, 212, 312, 646, 206, 512)

CAMPAIGN_TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "id": "cmp_winback_email",
        "name": "Win-back email",
        "channel": "email",
        "segment": "all_users",
        "goal_event": "Charged",
        "goal_filter": None,
        "conversion_window_days": 5,
        "control_group_pct": 10,
        "position": 0.30,
    },
    {
        "id": "cmp_flash_sale_push",
        "name": "Flash sale push",
        "channel": "push",
        "segment": "all_users",
        "goal_event": "Charged",
        "goal_filter": {"property": "Amount", "op": "gte", "value": 50},
        "conversion_window_days": 3,
        "control_group_pct": 15,
        "position": 0.50,
    },
    {
        "id": "cmp_cart_reminder_sms",
        "name": "Cart reminder SMS",
        "channel": "sms",
        "segment": "all_users",
        "goal_event": "Charged",
        "goal_filter": None,
        "conversion_window_days": 1,
        "control_group_pct": 20,
        "position": 0.70,
    },
)
CAMPAIGN_DURATION_DAYS = 2
# The system control group the generator holds out: dbt's default of var rekindle_global_control_pct.
GLOBAL_CONTROL_PCT = 3
CONSENT_FLAG = {"email": "MSG-email", "sms": "MSG-sms", "push": "MSG-push"}


def control_bucket(campaign_id: str, user_id: str) -> int:
    """Deterministic 0..99 bucket; a user is in a campaign's control group iff bucket < control_group_pct.

    The dbt models recompute this in SQL, so it must never change.
    """
    return int(hashlib.md5(f"{campaign_id}:{user_id}".encode()).hexdigest()[:8], 16) % 100


def global_control_bucket(user_id: str) -> int:
    """Deterministic 0..99 bucket of the system-wide control group: a user is held out of every campaign iff
    bucket < GLOBAL_CONTROL_PCT (dbt: macros/is_global_control.sql with var rekindle_global_control_pct)."""
    return control_bucket("global", user_id)


@dataclass
class GenerationStats:
    """What a run wrote. ``events_written`` counts every line of the events files, bad and duplicate lines
    included, so ``events_written - bad_lines - duplicate_lines`` is the number of distinct valid events."""

    users: int = 0
    identified_users: int = 0
    devices: int = 0
    events_written: int = 0
    profiles_written: int = 0
    bad_lines: int = 0
    duplicate_lines: int = 0
    campaigns: int = 0
    shared_devices: int = 0
    bad_kinds: dict[str, int] = field(default_factory=dict)
    notifications_sent: dict[str, int] = field(default_factory=dict)


@dataclass
class Device:
    """A device (CleverTap objectId) of ``owner``; ``guest`` logs in on it at ``switch_ts`` when shared."""

    object_id: str
    owner: str
    platform: str
    first_day: int
    login_ts: int | None = None
    guest: str | None = None
    switch_ts: int | None = None
    uninstall_ts: int | None = None

    def identity_at(self, ts: int) -> str | None:
        """Who the device is logged in as at ``ts`` (None while anonymous)."""
        if self.switch_ts is not None and ts >= self.switch_ts:
            return self.guest
        if self.login_ts is not None and ts >= self.login_ts:
            return self.owner
        return None


@dataclass
class User:
    """One simulated person: activity pattern, devices and (when identified) profile history."""

    uid: str
    identified: bool
    start_day: int
    last_day: int
    activity: float
    devices: list[Device]
    uninstalls: bool
    profile: dict[str, Any] | None = None
    logins: list[tuple[int, str]] = field(default_factory=list)  # (ts, objectId), any order until sorted
    update: tuple[int, str, dict[str, Any]] | None = None  # (ts, objectId, changed fields)

    def profile_at(self, ts: int) -> dict[str, Any]:
        """The profile as of ``ts``: the first-login fields plus the update once it has happened."""
        state = dict(self.profile or {})
        if self.update is not None and self.update[0] <= ts:
            state.update(self.update[2])
        return state


@dataclass(frozen=True)
class Product:
    """A catalogue item; its fields are reused verbatim in Product Viewed, Added To Cart and Items."""

    product_id: str
    category: str
    price: float


def _dumps(obj: Any) -> str:
    """Compact, key-order-preserving JSON (stable bytes for the same input)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _iso(ts: int) -> str:
    """ISO-8601 UTC with a Z suffix, the alternative ts form CleverTap accepts."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class EventSink:
    """Renders event records to JSON lines as they are produced and files them by UTC day of ``ts``.

    Rendering immediately keeps memory at one string per event; the per-record choices (ISO ts, eventId)
    are drawn here so every producer gets the same mix.
    """

    def __init__(self, rng: random.Random, start_ts: int, days: int) -> None:
        self.rng = rng
        self.start_ts = start_ts
        self.end_ts = start_ts + days * DAY
        self.by_day: list[list[tuple[int, int, str]]] = [[] for _ in range(days)]
        self.seq = 0
        self._event_ids: set[int] = set()

    def new_event_id(self) -> str:
        """A fresh unique eventId (``e-`` + 16 hex digits)."""
        while True:
            value = self.rng.getrandbits(64)
            if value not in self._event_ids:
                self._event_ids.add(value)
                return f"e-{value:016x}"

    def emit(self, ts: int, name: str, data: dict[str, Any], identity: str | None, object_id: str | None) -> None:
        """Add one event; events outside the range are dropped (the range is all the data there is)."""
        if not self.start_ts <= ts < self.end_ts:
            return
        rng = self.rng
        record: dict[str, Any] = {
            "type": "event",
            "evtName": name,
            "ts": _iso(ts) if rng.random() < ISO_TS_SHARE else ts,
        }
        if identity is not None:
            record["identity"] = identity
        if object_id is not None:
            record["objectId"] = object_id
        if rng.random() < EVENT_ID_SHARE:
            record["eventId"] = self.new_event_id()
        record["evtData"] = data
        self.by_day[(ts - self.start_ts) // DAY].append((ts, self.seq, _dumps(record)))
        self.seq += 1

    def sorted_days(self) -> list[list[str]]:
        """Each day's lines in time order, with exact repeats (same device, second and payload) dropped so
        that the only identical lines in the output are the deliberate duplicates."""
        days: list[list[str]] = []
        for bucket in self.by_day:
            bucket.sort()
            seen: set[str] = set()
            lines: list[str] = []
            for _, _, line in bucket:
                if line not in seen:
                    seen.add(line)
                    lines.append(line)
            days.append(lines)
        return days


# ---------------------------------------------------------------------------------------------------------
# Population


def _make_catalog(rng: random.Random, size: int = 400) -> tuple[list[Product], list[float]]:
    """Products with log-normal prices and Zipf-like popularity (cumulative weights for rng.choices)."""
    products = [
        Product(
            f"P{1000 + i}",
            rng.choice(CATEGORIES),
            round(min(899.0, max(1.99, rng.lognormvariate(3.0, 0.8))), 2),
        )
        for i in range(size)
    ]
    cum: list[float] = []
    total = 0.0
    for rank in range(size):
        total += 1.0 / (rank + 8)
        cum.append(total)
    return products, cum


def _new_object_id(rng: random.Random, taken: set[str]) -> str:
    """A unique ``dev-<8 hex>`` device id."""
    while True:
        object_id = f"dev-{rng.getrandbits(32):08x}"
        if object_id not in taken:
            taken.add(object_id)
            return object_id


def _make_phone(rng: random.Random) -> str:
    """A fictional number in one of the formats real apps collect (555-01xx and Ofcom's drama range)."""
    area = rng.choice(US_AREA_CODES)
    line = f"{rng.randint(100, 199):04d}"
    style = rng.randrange(5)
    if style == 0:
        return f"+1{area}555{line}"
    if style == 1:
        return f"({area}) 555-{line}"
    if style == 2:
        return f"{area}-555-{line}"
    if style == 3:
        return f"+1 {area}-555-{line}"
    return f"+44 20 7946 0{rng.randint(0, 999):03d}"


def _make_email(rng: random.Random, first: str, last: str, number: int) -> str:
    """A unique address; ~8% have stray capitals or spaces, as hand-typed addresses do."""
    local = f"{first}.{last}{number}".lower().replace("ü", "u")
    email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
    mess = rng.random()
    if mess < 0.04:
        return email[0].upper() + email[1:].replace("@example", "@Example")
    if mess < 0.06:
        return f" {email}"
    if mess < 0.08:
        return f"{email} "
    return email


def _make_profile(rng: random.Random, number: int) -> dict[str, Any]:
    """The full profileData pushed at first login; ~10% lack Phone and ~3% lack Email."""
    gender = rng.choice(("F", "M"))
    first = rng.choice(FIRST_NAMES[gender])
    last = rng.choice(LAST_NAMES)
    profile: dict[str, Any] = {"Name": f"{first} {last}"}
    if rng.random() >= 0.03:
        profile["Email"] = _make_email(rng, first, last, number)
    if rng.random() >= 0.10:
        profile["Phone"] = _make_phone(rng)
    profile["Gender"] = gender
    profile["DOB"] = (date(1960, 1, 1) + timedelta(days=rng.randrange(17_000))).isoformat()
    for flag, share in CONSENT_SHARES.items():
        profile[flag] = rng.random() < share
    profile["Plan"] = rng.choices(PLANS, PLAN_WEIGHTS)[0]
    profile["City"] = rng.choice(CITIES)
    profile["Country"] = CITY_COUNTRIES[profile["City"]]
    return profile


def _make_users(rng: random.Random, count: int, days: int) -> list[User]:
    """Users u1..uN with a start day, a heavy-tailed activity level, churn, devices and profiles."""
    taken: set[str] = set()
    users: list[User] = []
    for number in range(1, count + 1):
        identified = rng.random() < IDENTIFIED_SHARE
        start_day = 0 if rng.random() < EXISTING_USER_SHARE else rng.randrange(days)
        # Pareto tail: most users show up a few days a month, a few come back daily.
        activity = min(0.95, 0.06 * rng.paretovariate(1.3))
        churns = rng.random() < CHURN_SHARE
        last_day = min(days - 1, start_day + int(rng.expovariate(1 / 6))) if churns else days - 1
        uid = f"u{number}"
        devices = [Device(_new_object_id(rng, taken), uid, rng.choice(PLATFORMS), start_day)]
        if last_day > start_day and rng.random() < SECOND_DEVICE_SHARE:
            second_day = rng.randint(start_day + 1, last_day)
            devices.append(Device(_new_object_id(rng, taken), uid, rng.choice(PLATFORMS), second_day))
        user = User(
            uid=uid,
            identified=identified,
            start_day=start_day,
            last_day=last_day,
            activity=activity,
            devices=devices,
            uninstalls=churns and rng.random() < UNINSTALL_SHARE_OF_CHURNERS,
        )
        if identified:
            user.profile = _make_profile(rng, number)
        users.append(user)
    _choose_guests(rng, users)
    return users


def _choose_guests(rng: random.Random, users: list[User]) -> None:
    """Mark ~1% of identified users' first devices as shared with another identified user (a family
    tablet); whether the switch really happens depends on the device having a session after the login."""
    identified = [u for u in users if u.identified]
    if len(identified) < 2:
        return
    for user in identified:
        if rng.random() < SHARED_DEVICE_SHARE:
            guest = rng.choice(identified)
            while guest is user:
                guest = rng.choice(identified)
            user.devices[0].guest = guest.uid


# ---------------------------------------------------------------------------------------------------------
# Behaviour


class Shop:
    """Builds sessions of the storefront funnel and hands out unique order ids."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.products, self._cum_weights = _make_catalog(rng)
        self._orders = 0

    def _pick(self) -> Product:
        return self.rng.choices(self.products, cum_weights=self._cum_weights)[0]

    def _order(self, cart: dict[str, tuple[Product, int]]) -> dict[str, Any]:
        """Charged evtData: Amount is the sum of the line items."""
        self._orders += 1
        items = [
            {"Product ID": p.product_id, "Category": p.category, "Price": p.price, "Quantity": q}
            for p, q in cart.values()
        ]
        return {
            "Amount": _cart_total(cart),
            "Charged ID": f"ord-{self._orders:07d}",
            "Items": items,
            "Payment mode": self.rng.choice(PAYMENT_MODES),
        }

    def session(self, t0: int, platform: str, buy: bool = False, min_amount: float = 0.0) -> Session:
        """One session: App Launched, views, maybe carts, maybe Charged; ``buy`` forces a purchase of at
        least ``min_amount`` (a campaign conversion)."""
        rng = self.rng
        events: Session = [(t0, "App Launched", {"Platform": platform, "App Version": rng.choice(APP_VERSIONS)})]
        n_views = 1 + min(MAX_VIEWS - 1, int(rng.expovariate(1 / 3)))
        wants_cart = buy or rng.random() < CART_SESSION_SHARE
        cart: dict[str, tuple[Product, int]] = {}  # Product ID -> (product, quantity), in order added
        ts = t0
        for view in range(n_views):
            product = self._pick()
            ts += rng.randint(MIN_GAP, MAX_GAP)
            events.append((ts, "Product Viewed", _product_props(product)))
            last_view = view == n_views - 1
            if wants_cart and len(cart) < MAX_CART_ITEMS and (rng.random() < 0.3 or (last_view and not cart)):
                ts += rng.randint(MIN_GAP, MAX_GAP)
                events.append((ts, "Added To Cart", self._add(cart, product, rng.choices((1, 2, 3), (80, 15, 5))[0])))
        if buy and _cart_total(cart) < min_amount:
            # Top the order up to the campaign's goal filter with more of its priciest item.
            product = max((p for p, _ in cart.values()), key=lambda p: p.price)
            quantity = math.ceil((min_amount - _cart_total(cart)) / product.price)
            ts += rng.randint(MIN_GAP, MAX_GAP)
            events.append((ts, "Added To Cart", self._add(cart, product, quantity)))
        if cart and (buy or rng.random() < CHECKOUT_SHARE):
            ts += rng.randint(30, 240)
            events.append((ts, "Charged", self._order(cart)))
        return events

    @staticmethod
    def _add(cart: dict[str, tuple[Product, int]], product: Product, quantity: int) -> dict[str, Any]:
        """Put ``quantity`` more of ``product`` in the cart (one line per product, so Items stays well under
        the 512-byte value limit) and return the Added To Cart evtData."""
        _, held = cart.get(product.product_id, (product, 0))
        cart[product.product_id] = (product, held + quantity)
        return {**_product_props(product), "Quantity": quantity}


def _product_props(product: Product) -> dict[str, Any]:
    """The product properties shared by Product Viewed, Added To Cart and Charged Items."""
    return {"Product ID": product.product_id, "Category": product.category, "Price": product.price}


def _cart_total(cart: dict[str, tuple[Product, int]]) -> float:
    return round(sum(p.price * q for p, q in cart.values()), 2)


def _plan_sessions(rng: random.Random, user: User, shop: Shop, start_ts: int) -> dict[str, list[Session]]:
    """Sessions per device (objectId → sessions in time order): 1 to 3 sessions on each active day."""
    sessions: dict[str, list[Session]] = {d.object_id: [] for d in user.devices}
    second = user.devices[1] if len(user.devices) > 1 else None
    for day in range(user.start_day, user.last_day + 1):
        forced = day == user.start_day or (second is not None and day == second.first_day)
        if not forced and rng.random() >= user.activity:
            continue
        count = rng.choices((1, 2, 3), (60, 28, 12))[0]
        slots = sorted(rng.sample(SESSION_SLOT_HOURS, count))
        for i, hour in enumerate(slots):
            t0 = start_ts + day * DAY + hour * HOUR + rng.randrange(HOUR)
            device = user.devices[0]
            if second is not None and day >= second.first_day:
                # A second device gets the day's last session when it first appears, then half of them.
                first_use = day == second.first_day and i == len(slots) - 1
                device = second if first_use or rng.random() < 0.5 else device
            sessions[device.object_id].append(shop.session(t0, device.platform))
    return sessions


def _log_in(rng: random.Random, user: User, sessions: dict[str, list[Session]], users_by_id: dict[str, User]) -> None:
    """Decide when each device logs in (and, on a shared device, when the guest takes over).

    The first device logs in during one of its first sessions, often not the very first, so it has
    anonymous history to adopt; a later device logs in at once (the user already has an account).
    """
    for index, device in enumerate(user.devices):
        device_sessions = sessions[device.object_id]
        if not user.identified or not device_sessions:
            device.guest = None
            continue
        if index == 0:
            # 40% log in on their first visit; the rest browse anonymously for up to five sessions first,
            # and log in part-way through a session.
            last = min(len(device_sessions) - 1, 5)
            k = 0 if last == 0 or rng.random() < 0.4 else rng.randint(1, last)
            session = device_sessions[k]
            device.login_ts = session[rng.randrange(len(session))][0]
        else:
            k = 0
            device.login_ts = device_sessions[0][0][0]
        user.logins.append((device.login_ts, device.object_id))
        if device.guest is not None and k + 1 < len(device_sessions):
            device.switch_ts = device_sessions[rng.randint(k + 1, len(device_sessions) - 1)][0][0]
            users_by_id[device.guest].logins.append((device.switch_ts, device.object_id))
        else:
            device.guest = None


def _simulate_user(rng: random.Random, user: User, shop: Shop, sink: EventSink, users_by_id: dict[str, User]) -> None:
    """Plan, log in and emit one user's organic traffic (plus App Uninstalled for some churners)."""
    sessions = _plan_sessions(rng, user, shop, sink.start_ts)
    _log_in(rng, user, sessions, users_by_id)
    last: tuple[int, Device] | None = None
    for device in user.devices:
        for session in sessions[device.object_id]:
            for ts, name, data in session:
                sink.emit(ts, name, data, device.identity_at(ts), device.object_id)
            if last is None or session[-1][0] > last[0]:
                last = (session[-1][0], device)
    if user.uninstalls and last is not None:
        # The app goes from the device the user last used, a little after that last session.
        last_ts, device = last
        device.uninstall_ts = last_ts + rng.randint(10 * 60, 6 * HOUR)
        ts = device.uninstall_ts
        sink.emit(
            ts,
            "App Uninstalled",
            {"Platform": device.platform},
            device.identity_at(ts),
            device.object_id,
        )


def _plan_profile_update(rng: random.Random, user: User, devices: dict[str, Device], end_ts: int) -> None:
    """~5% of identified users later change something: opt out of a channel and/or move Plan or City.

    The update comes from the device the user last logged in on that is still logged in as them, so a
    profile record never claims a device that another identity has taken over.
    """
    if not user.logins or rng.random() >= PROFILE_UPDATE_SHARE:
        return
    first_login = user.logins[0][0]
    if end_ts - first_login <= 2 * HOUR:
        return
    ts = rng.randint(first_login + HOUR, end_ts - 1)
    current = user.profile_at(ts)
    changes: dict[str, Any] = {}
    granted = [flag for flag in CONSENT_SHARES if current.get(flag)]
    if granted and rng.random() < 0.6:
        changes[rng.choice(granted)] = False
    if not changes or rng.random() < 0.5:
        changes["Plan"] = rng.choice([p for p in PLANS if p != current.get("Plan")])
    if rng.random() < 0.3:
        changes["City"] = rng.choice([c for c in CITIES if c != current.get("City")])
        changes["Country"] = CITY_COUNTRIES[changes["City"]]
    logged_in = [oid for login_ts, oid in user.logins if login_ts <= ts and devices[oid].identity_at(ts) == user.uid]
    if logged_in:  # else every device of theirs was taken over by someone else: nothing to push from
        user.update = (ts, logged_in[-1], changes)


def _profile_records(users: list[User]) -> list[tuple[int, int, dict[str, Any]]]:
    """(ts, seq, record) for every login push (full current profile) and every partial update."""
    records: list[tuple[int, int, dict[str, Any]]] = []
    for user in users:
        for ts, object_id in user.logins:
            data = user.profile_at(ts)
            records.append((ts, len(records), _profile_record(user.uid, object_id, ts, data)))
        if user.update is not None:
            ts, object_id, changes = user.update
            records.append((ts, len(records), _profile_record(user.uid, object_id, ts, dict(changes))))
    records.sort(key=lambda r: (r[0], r[1]))
    return records


def _profile_record(uid: str, object_id: str, ts: int, data: dict[str, Any]) -> dict[str, Any]:
    """One CleverTap profile upload record."""
    return {"type": "profile", "identity": uid, "objectId": object_id, "ts": ts, "profileData": data}


# ---------------------------------------------------------------------------------------------------------
# Campaigns


def campaign_definitions(days: int, end: date) -> list[dict[str, Any]]:
    """The campaigns with start dates scaled into the range (never before its second day when it has one,
    so some users have logged in before the start)."""
    first = end - timedelta(days=days - 1)
    campaigns = []
    for template in CAMPAIGN_TEMPLATES:
        offset = max(min(1, days - 1), min(days - 1, round(template["position"] * (days - 1))))
        start = first + timedelta(days=offset)
        campaign = {k: v for k, v in template.items() if k != "position"}
        campaign["start"] = start
        campaign["end"] = min(end, start + timedelta(days=CAMPAIGN_DURATION_DAYS))
        campaigns.append(campaign)
    return campaigns


def _notification_device(user: User, devices: dict[str, Device], ts: int, horizon: int) -> Device | None:
    """The device the user was last logged in on before ``ts`` that stays theirs and installed until
    ``horizon``; None (identity-only traffic, e.g. an email read on the web) when there is none."""
    best: tuple[int, Device] | None = None
    for login_ts, object_id in user.logins:
        device = devices[object_id]
        if login_ts > ts or (device.uninstall_ts is not None and device.uninstall_ts <= horizon):
            continue
        if device.switch_ts is not None and device.guest != user.uid and device.switch_ts <= horizon:
            continue  # a shared device about to be taken over by someone else
        if best is None or login_ts > best[0]:
            best = (login_ts, device)
    return best[1] if best else None


def _run_campaign(
    rng: random.Random,
    campaign: dict[str, Any],
    users: list[User],
    devices: dict[str, Device],
    shop: Shop,
    sink: EventSink,
) -> int:
    """Send, view and click one campaign to its non-control, consenting qualified users, then let the
    exposure lift their purchases in the conversion window. Returns the number of users sent to."""
    campaign_id, channel = campaign["id"], campaign["channel"]
    start_ts = _epoch(campaign["start"])
    window = campaign["conversion_window_days"] * DAY
    min_amount = float(campaign["goal_filter"]["value"]) if campaign["goal_filter"] else 0.0
    props = {"Campaign id": campaign_id, "Campaign type": channel}
    sent = 0
    for user in users:
        if not user.logins or user.logins[0][0] >= start_ts:
            continue  # not qualified: identity unknown before the start
        if global_control_bucket(user.uid) < GLOBAL_CONTROL_PCT:
            continue  # the system control group never receives a campaign
        if control_bucket(campaign_id, user.uid) < campaign["control_group_pct"]:
            continue  # control group: baseline behaviour only
        send_ts = start_ts + 9 * HOUR + rng.randrange(2 * HOUR)
        if not user.profile_at(send_ts).get(CONSENT_FLAG[channel]):
            continue
        device = _notification_device(user, devices, send_ts, send_ts + window + DAY)
        object_id = device.object_id if device else None
        sent += 1
        sink.emit(send_ts, "Notification Sent", dict(props), user.uid, object_id)
        deepest, at = "Notification Sent", send_ts
        if rng.random() < VIEW_SHARE:
            at = min(send_ts + window - 2 * HOUR, send_ts + _view_delay(rng, channel))
            deepest = "Notification Viewed"
            sink.emit(at, deepest, dict(props), user.uid, object_id)
            if rng.random() < CLICK_SHARE_OF_VIEWERS:
                at += rng.randint(5, 1800)
                deepest = "Notification Clicked"
                sink.emit(at, deepest, dict(props), user.uid, object_id)
        if rng.random() < CAMPAIGN_UPLIFT[deepest]:
            latest = send_ts + window - HOUR
            buy_ts = (
                at + rng.randint(60, 3 * HOUR) if deepest == "Notification Clicked" else rng.randint(at + 60, latest)
            )
            _emit_conversion(shop, sink, min(buy_ts, latest), user.uid, device, min_amount)
    return sent


def _view_delay(rng: random.Random, channel: str) -> int:
    """Seconds from send to view: push and SMS are seen within hours, email can wait most of a day."""
    if channel == "push":
        return rng.randint(30, 4 * HOUR)
    if channel == "sms":
        return rng.randint(60, 2 * HOUR)
    return rng.randint(10 * 60, 20 * HOUR)


def _emit_conversion(shop: Shop, sink: EventSink, ts: int, uid: str, device: Device | None, min_amount: float) -> None:
    """A purchase session driven by the campaign, logged in as the user."""
    platform = device.platform if device else "Web"
    for event_ts, name, data in shop.session(ts, platform, buy=True, min_amount=min_amount):
        sink.emit(event_ts, name, data, uid, device.object_id if device else None)


# ---------------------------------------------------------------------------------------------------------
# Noise: bad lines and duplicates


def _bad_line(rng: random.Random, kind: str, source: str, event_id: str) -> str:
    """A line derived from a valid one that is wrong in exactly one way (``kind``). It gets a fresh eventId
    so it never collides with the valid record it came from, nor with another bad line."""
    record = json.loads(source)
    fields = {k: v for k, v in record.items() if k != "evtData"}
    fields["eventId"] = event_id
    record = {**fields, "evtData": dict(record["evtData"])}
    if kind == "invalid_json":
        text = _dumps(record)
        return text[: len(text) - rng.randint(2, 12)]
    if kind == "no_identifier":
        record.pop("identity", None)
        record.pop("objectId", None)
    elif kind == "bad_ts":
        record["ts"] = "yesterday"
    elif kind == "unknown_type":
        record["type"] = "pageview"
    elif kind == "long_value":
        record["evtData"]["Referrer"] = "https://shop.example.com/landing?utm_content=" + "x" * rng.randint(520, 700)
    elif kind == "long_key":
        record["evtData"]["utm_" + "k" * rng.randint(121, 160)] = "spring"
    elif kind == "missing_evt_name":
        del record["evtName"]
    else:  # pragma: no cover - guarded by BAD_KINDS
        raise ValueError(kind)
    return _dumps(record)


def _inject_noise(
    rng: random.Random, days: list[list[str]], new_event_id: Any
) -> tuple[list[list[str]], Counter[str], int]:
    """Insert bad lines (right after their source line) and duplicates (an earlier line copied later in
    the same file, or re-delivered into the next day's file). Every bad kind and every duplicate flavour
    (same file or next file, with or without eventId) appears at least once when there are lines to copy.
    Returns the final lines per day, bad lines by kind and the number of duplicates."""
    offsets = [0]
    for lines in days:
        offsets.append(offsets[-1] + len(lines))
    total = offsets[-1]
    extras: list[dict[int, list[str]]] = [{} for _ in days]  # day -> {insert after index (-1 = top): lines}
    bad = Counter[str]()
    duplicates = 0

    def locate(index: int) -> tuple[int, int]:
        day = bisect.bisect_right(offsets, index) - 1
        return day, index - offsets[day]

    if total:
        n_bad = max(len(BAD_KINDS), round(total * BAD_LINE_RATE))
        kinds = list(BAD_KINDS) + [rng.choice(BAD_KINDS) for _ in range(n_bad - len(BAD_KINDS))]
        for kind, index in zip(kinds, rng.sample(range(total), min(n_bad, total)), strict=False):
            day, pos = locate(index)
            extras[day].setdefault(pos, []).append(_bad_line(rng, kind, days[day][pos], new_event_id()))
            bad[kind] += 1

        n_dup = max(4, round(total * DUPLICATE_RATE))
        flavours = [(False, True), (False, False), (True, True), (True, False)]
        flavours += [(rng.random() < 0.4, rng.random() < EVENT_ID_SHARE) for _ in range(n_dup - len(flavours))]
        used: set[int] = set()
        for next_day, with_id in flavours:
            next_day = next_day and len(days) > 1
            for _ in range(200):
                index = rng.randrange(total)
                day, pos = locate(index)
                line = days[day][pos]
                if index in used or (next_day and day == len(days) - 1) or ('"eventId":' in line) != with_id:
                    continue
                used.add(index)
                if next_day:
                    target, after = day + 1, rng.randrange(-1, len(days[day + 1]))
                else:
                    target, after = day, rng.randrange(pos, len(days[day]))
                extras[target].setdefault(after, []).append(line)
                duplicates += 1
                break

    out: list[list[str]] = []
    for lines, inserts in zip(days, extras, strict=True):
        merged = list(inserts.get(-1, ()))
        for pos, line in enumerate(lines):
            merged.append(line)
            merged.extend(inserts.get(pos, ()))
        out.append(merged)
    return out, bad, duplicates


# ---------------------------------------------------------------------------------------------------------
# Writing


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` in one step so a loader never sees a half-written file (the temporary name is
    hidden and has another extension, so landing-zone globs skip it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_events(out_dir: Path, first: date, days: list[list[str]]) -> None:
    """events/YYYY-MM-DD.jsonl.gz; gzip with mtime=0 and no file name keeps the bytes reproducible."""
    for offset, lines in enumerate(days):
        text = "".join(line + "\n" for line in lines).encode()
        name = f"{(first + timedelta(days=offset)).isoformat()}.jsonl.gz"
        _write_atomic(out_dir / "events" / name, gzip.compress(text, compresslevel=6, mtime=0))


def _write_profiles(out_dir: Path, first: date, days: int, records: list[tuple[int, int, dict]]) -> None:
    """profiles/YYYY-MM-DD.json as {"d": [...]}, one record per line for readable diffs."""
    start_ts = _epoch(first)
    per_day: list[list[str]] = [[] for _ in range(days)]
    for ts, _, record in records:
        if start_ts <= ts < start_ts + days * DAY:
            per_day[(ts - start_ts) // DAY].append(_dumps(record))
    for offset, lines in enumerate(per_day):
        body = '{"d":[\n' + ",\n".join(lines) + "\n]}\n" if lines else '{"d":[]}\n'
        _write_atomic(out_dir / "profiles" / f"{(first + timedelta(days=offset)).isoformat()}.json", body.encode())


def _write_campaigns(out_dir: Path, campaigns: list[dict[str, Any]]) -> None:
    """campaigns/campaigns.yml in the schema the campaign models validate."""
    header = (
        "# Generated by loaders.generate: sample campaigns for the generated range.\n"
        "# channel: email | push | sms; control group = control_bucket(id, user) < control_group_pct.\n"
    )
    body = yaml.safe_dump({"campaigns": campaigns}, sort_keys=False, allow_unicode=True)
    _write_atomic(out_dir / "campaigns" / "campaigns.yml", (header + body).encode())


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


# ---------------------------------------------------------------------------------------------------------
# Entry points


def generate(
    out_dir: Path, users: int = 20_000, days: int = 30, seed: int = 42, end: date = date(2026, 10, 31)
) -> GenerationStats:
    """Write a complete landing zone for ``users`` users over the ``days`` days ending on ``end``."""
    if users < 1 or days < 1:
        raise ValueError("users and days must be at least 1")
    out_dir = Path(out_dir)
    first = end - timedelta(days=days - 1)
    rng = random.Random(seed)
    sink = EventSink(rng, _epoch(first), days)
    shop = Shop(rng)

    population = _make_users(rng, users, days)
    users_by_id = {u.uid: u for u in population}
    devices = {d.object_id: d for u in population for d in u.devices}
    for user in population:
        _simulate_user(rng, user, shop, sink, users_by_id)
    for user in population:
        user.logins.sort()
        _plan_profile_update(rng, user, devices, sink.end_ts)

    campaigns = campaign_definitions(days, end)
    sent = {c["id"]: _run_campaign(rng, c, population, devices, shop, sink) for c in campaigns}

    event_days, bad, duplicates = _inject_noise(rng, sink.sorted_days(), sink.new_event_id)
    profiles = _profile_records(population)
    _write_events(out_dir, first, event_days)
    _write_profiles(out_dir, first, days, profiles)
    _write_campaigns(out_dir, campaigns)

    return GenerationStats(
        users=users,
        identified_users=sum(1 for u in population if u.logins),
        devices=sum(len(u.devices) for u in population),
        events_written=sum(map(len, event_days)),
        profiles_written=len(profiles),
        bad_lines=sum(bad.values()),
        duplicate_lines=duplicates,
        campaigns=len(campaigns),
        shared_devices=sum(1 for u in population for d in u.devices if d.switch_ts is not None),
        bad_kinds={kind: bad[kind] for kind in BAD_KINDS},
        notifications_sent=sent,
    )


def main(argv: list[str] | None = None) -> int:
    """CLI: generate, then print a one-line summary."""
    parser = argparse.ArgumentParser(prog="python -m loaders.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000, help="number of users (default 20000)")
    parser.add_argument("--days", type=int, default=30, help="days of data ending on --end (default 30)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 10, 31), help="last day, inclusive (UTC)")
    parser.add_argument("--out", type=Path, default=Path("data/landing"), help="landing folder (default data/landing)")
    args = parser.parse_args(argv)
    if args.users < 1 or args.days < 1:
        parser.error("--users and --days must be at least 1")
    started = time.perf_counter()
    stats = generate(args.out, args.users, args.days, args.seed, args.end)
    first = args.end - timedelta(days=args.days - 1)
    print(
        f"generated {stats.users} users ({stats.identified_users} identified, {stats.devices} devices), "
        f"{stats.events_written} event lines ({stats.bad_lines} bad, {stats.duplicate_lines} duplicate), "
        f"{stats.profiles_written} profile records, {stats.campaigns} campaigns for {first}..{args.end} "
        f"into {args.out} in {time.perf_counter() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
