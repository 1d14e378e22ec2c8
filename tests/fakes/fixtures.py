"""pytest fixtures for the fake destinations: one fresh server per test (they start in milliseconds).

Use them in a test module with `from fakes.fixtures import fake_sendgrid, fake_twilio  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .sendgrid import FakeSendGrid
from .twilio import FakeTwilio


@pytest.fixture
def fake_sendgrid() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as api:
        yield api


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as api:
        yield api
