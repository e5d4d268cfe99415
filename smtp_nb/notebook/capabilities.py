"""What a server offers, in words: each ESMTP extension with a one-line meaning, the TLS state and the login.

``Capabilities.of(client, ...)`` takes a snapshot of a connected client; call it
on the loop the client lives on. The snapshot is plain data, shown by
``smtp_nb.notebook.views``.
"""

from __future__ import annotations

import dataclasses
import datetime
import ssl
from collections.abc import Callable
from typing import Any

from smtp_nb.client import SMTP

__all__ = ["Capabilities", "Extension", "TLSInfo", "meaning_of"]


def _size(params: str) -> str:
    value = params.strip()
    if value.isdigit() and int(value) > 0:
        limit = int(value)
        return f"messages up to {limit / 1_000_000:,.1f} MB ({limit:,} bytes); larger ones are refused before sending"
    return "the server states message sizes but sets no fixed limit"


def _auth(params: str) -> str:
    methods = params.split()
    return f"login methods: {', '.join(methods)}" if methods else "login is possible (no method listed)"


#: One line per extension a person may meet; a callable gets the parameters.
_MEANINGS: dict[str, str | Callable[[str], str]] = {
    "PIPELINING": "commands go out in batches without waiting for each reply (RFC 2920); used automatically",
    "SIZE": _size,
    "STARTTLS": "the connection can be upgraded to TLS (RFC 3207)",
    "AUTH": _auth,
    "8BITMIME": "8-bit message bodies are accepted as they are (RFC 6152)",
    "SMTPUTF8": "addresses and headers may use UTF-8, e.g. jürgen@example.com (RFC 6531)",
    "DSN": "delivery status notifications on request: NOTIFY=SUCCESS,FAILURE (RFC 3461)",
    "CHUNKING": "message data can go in sized chunks with BDAT instead of DATA (RFC 3030)",
    "BINARYMIME": "binary message bodies accepted with BDAT, no base64 needed (RFC 3030)",
    "ENHANCEDSTATUSCODES": "replies carry detailed status codes such as 5.1.1 = no such mailbox (RFC 2034)",
    "HELP": "the HELP command answers (try %smtp HELP)",
    "VRFY": "VRFY asks whether an address exists (try %smtp VRFY address)",
    "EXPN": "EXPN lists the members of a mailing list (try %smtp EXPN list)",
    "ETRN": "a client may ask the server to flush its queue for a domain (RFC 1985)",
    "DELIVERBY": "a deadline for delivery can be set on a message (RFC 2852)",
    "REQUIRETLS": "a message can demand TLS on every hop to its recipient (RFC 8689)",
    "MT-PRIORITY": "messages can carry a priority (RFC 6710)",
    "FUTURERELEASE": "a message can be held for release at a later time (RFC 4865)",
    "LIMITS": "the server states its limits on recipients and transactions (RFC 9422)",
    "NO-SOLICITING": "the server asks clients not to probe it with unsolicited extensions (RFC 3865)",
    "XCLIENT": "a trusted proxy may pass on its client's details (Postfix XCLIENT)",
    "XFORWARD": "a trusted filter may pass on the original client's details (Postfix XFORWARD)",
    "SEND": "SEND/SOML/SAML commands of RFC 821 (obsolete)",
    "TURN": "the roles of client and server can be swapped (obsolete and insecure)",
}


def meaning_of(keyword: str, params: str = "") -> tuple[str, bool]:
    """The one-line meaning of an extension, and whether smtp_nb knows it."""
    meaning = _MEANINGS.get(keyword.upper())
    if meaning is None:
        return "not known to smtp_nb: see the server's documentation", False
    return (meaning(params) if callable(meaning) else meaning), True


@dataclasses.dataclass(frozen=True)
class Extension:
    """One line of the EHLO reply."""

    keyword: str
    params: str
    meaning: str
    known: bool

    @property
    def label(self) -> str:
        return f"{self.keyword} {self.params}".strip()


@dataclasses.dataclass(frozen=True)
class TLSInfo:
    """The encryption of a connection, and the certificate the server showed."""

    protocol: str | None
    cipher: str | None
    bits: int | None
    subject: str | None
    issuer: str | None
    expires: str | None  # YYYY-MM-DD, UTC
    verified: bool

    @classmethod
    def of(cls, client: SMTP) -> TLSInfo | None:
        ssl_object = client.get_transport_info("ssl_object")
        if ssl_object is None:
            return None
        context = client.get_transport_info("sslcontext")
        verified = context is not None and context.verify_mode != ssl.CERT_NONE
        name, _, bits = ssl_object.cipher() or (None, None, None)
        subject, issuer, expires = _certificate(ssl_object)
        return cls(ssl_object.version(), name, bits, subject, issuer, expires, verified)

    @property
    def summary(self) -> str:
        cipher = f", {self.cipher}" + (f" ({self.bits} bits)" if self.bits else "") if self.cipher else ""
        return f"{self.protocol or 'TLS'}{cipher}"

    @property
    def certificate(self) -> str:
        if self.subject is None and self.issuer is None:
            return "certificate details unavailable"
        return f"subject {self.subject or '?'}; issuer {self.issuer or '?'}; expires {self.expires or '?'}"


_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "emailAddress": "E",
}


def _name(rdns: Any) -> str:
    return ", ".join(f"{_SHORT_NAMES.get(key, key)}={value}" for rdn in rdns for key, value in rdn)


def _certificate(ssl_object: ssl.SSLObject) -> tuple[str | None, str | None, str | None]:
    """Subject, issuer and expiry date of the peer's certificate.

    A verified certificate is decoded by the ssl module; an unverified one
    only comes as DER, which ``cryptography`` (installed with trustme) reads.
    """
    cert = ssl_object.getpeercert()
    if cert:
        expires = None
        if "notAfter" in cert:
            seconds = ssl.cert_time_to_seconds(str(cert["notAfter"]))
            expires = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).date().isoformat()
        return _name(cert.get("subject", ())), _name(cert.get("issuer", ())), expires
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None, None, None
    try:
        from cryptography import x509
    except ImportError:
        return None, None, None
    parsed = x509.load_der_x509_certificate(der)
    not_after = getattr(parsed, "not_valid_after_utc", None) or parsed.not_valid_after
    return _x509_name(parsed.subject), _x509_name(parsed.issuer), not_after.date().isoformat()


def _x509_name(name: Any) -> str:
    """A ``cryptography`` name written as ``_name`` writes the ssl module's: in order, ``O=..., OU=...``."""
    parts = []
    for rdn in name.rdns:
        for attribute in rdn:
            key = "E" if attribute.oid.dotted_string == "1.2.840.113549.1.9.1" else attribute.rfc4514_attribute_name
            parts.append(f"{key}={attribute.value}")
    return ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """A snapshot of what connection ``name`` offers: extensions, TLS, login."""

    name: str
    where: str
    server_name: str
    esmtp: bool
    extensions: tuple[Extension, ...]
    tls: TLSInfo | None
    user: str | None

    @classmethod
    def of(cls, client: SMTP, name: str, where: str) -> Capabilities:
        """Read a connected client's state (on its own loop: nothing else touches it meanwhile)."""
        ehlo = client.last_ehlo_response
        helo = client.last_helo_response
        reply = ehlo or helo
        first_line = reply.message.split("\n", 1)[0] if reply is not None else ""
        extensions = []
        for keyword, params in client.esmtp_extensions.items():
            meaning, known = meaning_of(keyword, params)
            extensions.append(Extension(keyword.upper(), params, meaning, known))
        return cls(
            name=name,
            where=where,
            server_name=first_line.split(" ", 1)[0],
            esmtp=ehlo is not None,
            extensions=tuple(extensions),
            tls=TLSInfo.of(client),
            user=client.authenticated_as,
        )

    def extension(self, keyword: str) -> Extension | None:
        for extension in self.extensions:
            if extension.keyword == keyword.upper():
                return extension
        return None

    @property
    def auth_methods(self) -> list[str]:
        extension = self.extension("AUTH")
        return extension.params.split() if extension is not None else []

    @property
    def max_message_size(self) -> int | None:
        extension = self.extension("SIZE")
        value = extension.params.strip() if extension is not None else ""
        return int(value) if value.isdigit() and int(value) > 0 else None

    def heading(self) -> str:
        """``SMTP connection 'name' to host:port (server name)``."""
        server = f" (server {self.server_name})" if self.server_name else ""
        return f"SMTP connection {self.name!r} to {self.where}{server}"

    def tls_lines(self) -> list[str]:
        """The TLS state, the certificate, and a warning line when it was not verified."""
        tls = self.tls
        if tls is None:
            return ["TLS: none - the connection is not encrypted"]
        lines = [f"TLS: {tls.summary}", f"certificate: {tls.certificate}"]
        if not tls.verified:
            lines.append(
                "WARNING: the certificate was NOT verified (--no-verify): anyone on the way could read this connection"
            )
        return lines

    def login_line(self) -> str:
        if self.user is not None:
            return f"login: logged in as {self.user}"
        offered = self.auth_methods
        return "login: not logged in" + (f" (AUTH offers {' '.join(offered)})" if offered else "")
