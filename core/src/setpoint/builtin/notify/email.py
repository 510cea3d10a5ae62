"""The ``email`` notifier: plain-text mail over SMTP. STARTTLS is required by default on the
submission port (587), implicit TLS (465) is available, and plain SMTP only on explicit request for a
relay on the same host. The password comes from a file or an environment variable; the server's
certificate is verified (against ``ca_file`` when the relay uses a private CA)."""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from setpoint.api import Notification
from setpoint.builtin.notify.builtin import CredentialNotifier
from setpoint.builtin.notify.credentials import Strict

TIMEOUT = 20.0
_ADDRESS = r"^[^@\s<>]+@[^@\s<>]+$"


class EmailSettings(Strict):
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    #: ``starttls`` (default; refuses a server that does not offer it), ``tls`` (implicit, port 465)
    #: or ``none`` (only for a relay on localhost).
    security: Literal["starttls", "tls", "none"] = "starttls"
    #: A private CA's certificate (PEM) to verify the server with, instead of the system's.
    ca_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    from_address: str = Field(alias="from", pattern=_ADDRESS)
    to: list[str] = Field(min_length=1)
    subject_prefix: str = "[setpoint]"

    @model_validator(mode="after")
    def _coherent(self) -> EmailSettings:
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("give one of password_file or password_env")
        has_password = self.password_file is not None or self.password_env is not None
        if has_password != (self.username is not None):
            raise ValueError("username and a password (password_file or password_env) go together")
        if has_password and self.security == "none":
            raise ValueError("a password is never sent without TLS: use security: starttls or tls")
        for address in self.to:
            if "@" not in address or any(c in address for c in " <>\r\n"):
                raise ValueError(f"not an e-mail address: {address!r}")
        return self


class EmailNotifier(CredentialNotifier):
    kind = "email"
    Settings = EmailSettings
    needs_url = False

    def send(self, notification: Notification) -> None:
        s: EmailSettings = self.settings
        message = EmailMessage()
        message["Subject"] = f"{s.subject_prefix} {notification.title}".strip()
        message["From"] = s.from_address
        message["To"] = ", ".join(s.to)
        message["Date"] = formatdate(time.time(), localtime=False)
        message["Message-ID"] = make_msgid(domain=s.from_address.rsplit("@", 1)[1])
        message["X-Setpoint-Event"] = notification.event
        if notification.target:
            message["X-Setpoint-Target"] = notification.target
        lines = [notification.text, ""]
        lines += [f"{key}: {value}" for key, value in notification.fields.items()]
        lines += [f"{target}: {result}" for target, result in notification.targets.items()]
        message.set_content("\n".join(lines).rstrip() + "\n")
        ca_file = None
        if s.ca_file is not None:  # relative to setpoint.yaml, like every path in it
            ca_file = str(s.ca_file if s.ca_file.is_absolute() else self.base_dir / s.ca_file)
        context = ssl.create_default_context(cafile=ca_file)
        smtp: smtplib.SMTP
        if s.security == "tls":
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=TIMEOUT, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=TIMEOUT)
        with smtp:
            smtp.ehlo()
            if s.security == "starttls":
                # smtplib raises SMTPNotSupportedError when the server does not offer STARTTLS: never
                # fall back to plain text
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username is not None:
                password = self._credential(s.password_file, s.password_env, "password")
                smtp.login(s.username, password.reveal())
            smtp.send_message(message)
