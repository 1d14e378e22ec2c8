"""Where a report email goes: the outbox folder (embedded default) or an SMTP server.

SMTP goes through Airflow's SMTP provider: `REKINDLE_SMTP_CONN_ID` names an Airflow Connection of type
smtp (host, port, login, password; extra `disable_tls`, `disable_ssl`, `timeout`, `retry_limit`), so the
credentials stay in Airflow's secrets and never reach a log. Outside a running Airflow the connection
comes from `AIRFLOW_CONN_<ID>` as usual. Without the variable, messages are written as `.eml` files into
`REKINDLE_OUT/outbox/`, which any mail client opens.

SmtpHook opens, secures (STARTTLS unless disabled) and authenticates the session; the message is sent
through that session as built, because the hook's own `send_email_smtp` builds a different MIME message
(no plain-text alternative, no inline images by Content-ID). A temporary refusal (4xx, a dropped
connection) is retried within the call with exponential backoff, `REKINDLE_SMTP_ATTEMPTS` times in all
(default 4, first delay `REKINDLE_SMTP_RETRY_SECONDS`, default 5); a permanent refusal (5xx) is not.
"""

from __future__ import annotations

import logging
import os
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """The message could not be delivered; the text says why and whether retrying can help."""


@dataclass(frozen=True)
class DeliveryOptions:
    smtp_conn_id: str | None = None
    attempts: int = 4
    retry_seconds: float = 5.0

    @classmethod
    def from_env(cls) -> DeliveryOptions:
        def number(name: str, default: str, kind: type) -> float:
            value = os.environ.get(name, default)
            try:
                parsed = kind(value)
            except ValueError:
                parsed = -1
            if parsed < (1 if kind is int else 0):
                wanted = "a whole number >= 1" if kind is int else "a number >= 0"
                raise ValueError(f"{name} must be {wanted}, got {value!r}")
            return parsed

        return cls(
            smtp_conn_id=os.environ.get("REKINDLE_SMTP_CONN_ID") or None,
            attempts=int(number("REKINDLE_SMTP_ATTEMPTS", "4", int)),
            retry_seconds=float(number("REKINDLE_SMTP_RETRY_SECONDS", "5", float)),
        )

    @property
    def channel(self) -> str:
        return f"smtp:{self.smtp_conn_id}" if self.smtp_conn_id else "outbox"


def write_to_outbox(message: EmailMessage, outbox: Path, filename: str) -> Path:
    """outbox/<filename>, written atomically: a crash never leaves half a message for a mail client."""
    outbox.mkdir(parents=True, exist_ok=True)
    target = outbox / filename
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(bytes(message))
    os.replace(partial, target)
    return target


def _transient(error: Exception) -> bool:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    # A dropped or refused connection, a timeout: the server may be back in a moment.
    return isinstance(error, smtplib.SMTPServerDisconnected | OSError)


def send_smtp(message: EmailMessage, options: DeliveryOptions) -> dict[str, tuple[int, bytes]]:
    """Send through the Airflow Connection; returns the recipients the server refused while accepting others."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    recipients = [address for _, address in getaddresses(message.get_all("To", []))]
    for attempt in range(1, options.attempts + 1):
        try:
            with SmtpHook(smtp_conn_id=options.smtp_conn_id) as hook:
                hook.get_conn()
                # The hook's public sender builds its own MIME; send ours through its authenticated session.
                return hook._smtp_client.send_message(message, to_addrs=recipients)
        except Exception as error:
            if not _transient(error):
                raise DeliveryError(
                    f"SMTP ({options.smtp_conn_id}) refused the message permanently: {error}"
                ) from error
            if attempt == options.attempts:
                raise DeliveryError(
                    f"SMTP ({options.smtp_conn_id}) still refused the message after {attempt} attempts: {error}"
                ) from error
            delay = options.retry_seconds * 2 ** (attempt - 1)
            log.warning("SMTP attempt %d of %d failed (%s); retry in %.1f s", attempt, options.attempts, error, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises
