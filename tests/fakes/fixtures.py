"""pytest fixtures for the fake destinations: one fresh server per test (they start in milliseconds).

Use them in a test module with `from fakes.fixtures import fake_sendgrid, fake_twilio  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .braze import FakeBraze
from .google_data_manager import FakeGoogleDataManager
from .meta import FakeMeta
from .sendgrid import FakeSendGrid
from .twilio import FakeTwilio
from .webhook_receiver import FakeWebhookReceiver


@pytest.fixture
def fake_sendgrid() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as api:
        yield api


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as api:
        yield api


@pytest.fixture
def fake_meta() -> Iterator[FakeMeta]:
    with FakeMeta() as api:
        yield api


@pytest.fixture
def fake_google() -> Iterator[FakeGoogleDataManager]:
    with FakeGoogleDataManager() as api:
        yield api


@pytest.fixture
def fake_braze() -> Iterator[FakeBraze]:
    with FakeBraze() as api:
        yield api


@pytest.fixture
def fake_webhook() -> Iterator[FakeWebhookReceiver]:
    with FakeWebhookReceiver() as api:
        yield api
