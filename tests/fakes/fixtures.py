"""pytest fixtures for the fake destinations: one fresh server per test (they start in milliseconds).

Use them in a test module with `pytest_plugins = ["fakes.fixtures"]` (importing the fixtures by name works too,
but ruff then reports each use as a redefinition, F811).
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
