"""Outgoing e-mail to publishers (standard library ``smtplib``), or a log line when SMTP is off.

SMTP is configured with ``TISSU_SMTP_HOST`` (and ``_PORT``, ``_USER``, ``_PASSWORD``, ``_FROM``,
``_STARTTLS``); with no host, the message is written to the ``tissu.mail`` logger instead, so that
moderation and alerts work the same on a laptop. A failing SMTP server never raises: the failure
is logged and reported as ``False``.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from tissu.settings import Settings

logger = logging.getLogger("tissu.mail")


def build_message(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text UTF-8 message (RFC 5322) from ``settings.smtp_from`` to ``to``."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or None)
    message.set_content(body)
    return message


def send_mail(settings: Settings, to: str, subject: str, body: str) -> bool:
    """Send one message, or log it when SMTP is not configured.

    Returns:
        True when the SMTP server accepted the message; False when it was only logged (no SMTP
        host) or when sending failed (the error is logged; never raised).
    """
    message = build_message(settings, to, subject, body)
    if not settings.smtp_host:
        logger.info("SMTP non configuré ; message non envoyé à %s : %s\n%s", to, subject, body)
        return False
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                          timeout=settings.connect_timeout) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        logger.error("envoi du message à %s impossible (%s) : %s", to, exc, subject)
        return False
    logger.info("message envoyé à %s : %s", to, subject)
    return True
