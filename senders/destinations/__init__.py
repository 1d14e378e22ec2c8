"""Destinations a sync can send to: one module each, registered here by kind (the audience's `destination`)."""

from __future__ import annotations

from senders.destinations.base import Destination
from senders.destinations.braze import Braze
from senders.destinations.file import FileDestination
from senders.destinations.google_data_manager import GoogleDataManager
from senders.destinations.meta_custom_audience import MetaCustomAudience
from senders.destinations.s3 import S3Destination
from senders.destinations.sendgrid import SendGrid
from senders.destinations.twilio_sms import TwilioSms
from senders.destinations.webhook import Webhook

DESTINATIONS: dict[str, type[Destination]] = {
    cls.kind: cls
    for cls in (
        FileDestination,
        S3Destination,
        SendGrid,
        MetaCustomAudience,
        GoogleDataManager,
        Braze,
        TwilioSms,
        Webhook,
    )
}
