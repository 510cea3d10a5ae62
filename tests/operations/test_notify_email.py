"""The ``email`` notifier against a real SMTP server (aiosmtpd) that requires STARTTLS before AUTH,
with a certificate from a private CA given as ``ca_file``: the message arrives after the upgrade,
authenticated with the password from a file; a server without STARTTLS is refused, never used in
plain text; the password appears in no message or log line."""

from __future__ import annotations

import datetime
import email
import ipaddress
import smtplib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from setpoint.api import Notification
from setpoint.builtin.notify.email import EmailNotifier, EmailSettings

PASSWORD = "smtp-PASSW0RD-9x"


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "setpoint test smtp")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's naming
        self.messages.append(email.message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.transcript.append(f"tls={session.ssl is not None}")
        return "250 OK"


def serve(mailbox: Mailbox, tls: ssl.SSLContext | None, require_starttls: bool) -> Controller:
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == b"setpoint" and data.password == PASSWORD.encode()
        if ok:
            mailbox.logins.append(data.login.decode())
        return AuthResult(success=ok)

    with socket.socket() as probe:  # aiosmtpd's readiness check cannot use port 0: pick a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=tls, require_starttls=require_starttls,
                            authenticator=authenticate, auth_require_tls=True, ready_timeout=10)
    controller.start()
    return controller


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Mailbox, int, Path]]:
    cert, key = certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    controller = serve(mailbox, context, require_starttls=True)
    try:
        yield mailbox, controller.port, cert
    finally:
        controller.stop()


def notifier(tmp_path: Path, port: int, **settings: Any) -> EmailNotifier:
    (tmp_path / "smtp.password").write_text(PASSWORD + "\n")
    block = {"host": "127.0.0.1", "port": port, "username": "setpoint", "password_file": "smtp.password",
             "from": "setpoint@example.com", "to": ["ops@example.com", "oncall@example.com"], **settings}
    n = EmailNotifier("mail", None, EmailSettings.model_validate(block))
    n.base_dir = tmp_path
    return n


FAILED = Notification("failed", "error", "payments: reconcile failing",
                      "Target payments failed 3 reconciles in a row. Stage: apply.", "payments", "kubernetes",
                      "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5", {"stage": "apply", "failures": "3"})


def test_starttls_auth_and_message(tmp_path: Path, tls_server: tuple[Mailbox, int, Path]) -> None:
    mailbox, port, cert = tls_server
    n = notifier(tmp_path, port, ca_file=cert.name)   # relative to the configuration's folder
    n.send(FAILED)
    [message] = mailbox.messages
    assert mailbox.transcript == ["tls=True"] and mailbox.logins == ["setpoint"]
    assert mailbox.envelopes == [("setpoint@example.com", ["ops@example.com", "oncall@example.com"])]
    assert message["Subject"] == "[setpoint] payments: reconcile failing"
    assert message["From"] == "setpoint@example.com" and message["To"] == "ops@example.com, oncall@example.com"
    assert message["X-Setpoint-Event"] == "failed" and message["X-Setpoint-Target"] == "payments"
    assert message["Message-ID"].endswith("@example.com>") and message["Date"]
    body = message.get_payload(decode=True).decode()
    assert "Stage: apply" in body and "failures: 3" in body
    assert PASSWORD not in message.as_string()


def test_an_untrusted_certificate_is_refused(tmp_path: Path, tls_server: tuple[Mailbox, int, Path]) -> None:
    mailbox, port, _ = tls_server
    with pytest.raises(ssl.SSLCertVerificationError):
        notifier(tmp_path, port).send(FAILED)   # the system CAs do not know the test certificate
    assert not mailbox.messages and not mailbox.logins


def test_a_server_without_starttls_is_never_used_in_plain_text(tmp_path: Path) -> None:
    """A relay that stripped STARTTLS (or a man in the middle who did) gets no password and no mail."""
    mailbox = Mailbox()
    controller = serve(mailbox, None, require_starttls=False)
    try:
        port = controller.port
        with pytest.raises(smtplib.SMTPNotSupportedError):
            notifier(tmp_path, port).send(FAILED)
        assert not mailbox.messages and not mailbox.logins
    finally:
        controller.stop()
