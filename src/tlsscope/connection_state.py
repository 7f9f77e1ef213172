"""What the core learns about one connection: its timeline, alerts, statistics and state.

Plain data, filled in by :mod:`tlsscope.connection` (the state machine) and read by
:mod:`tlsscope.report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import Endpoint


@dataclass(slots=True)
class TimelineEntry:
    """One record or handshake message, in the order seen."""

    from_client: bool
    ts: float
    frame: int
    content_type: int
    handshake_type: int | None
    name: str
    encrypted: bool
    decrypted: bool = False
    length: int = 0
    count: int = 1                 # > 1 for coalesced application-data records
    message: Any = None            # decoded message / Alert / None
    error: str | None = None       # set when the unit was malformed
    raw: bytes | None = None       # handshake message bytes (with header) for -v / byte view
    offset: int = 0                # stream offset in its direction


@dataclass(frozen=True, slots=True)
class Alert:
    from_client: bool
    level: int | None
    description: int | None
    encrypted: bool
    decrypted: bool
    ts: float
    frame: int


@dataclass(slots=True)
class DirectionStats:
    records: int = 0
    bytes: int = 0                 # TCP payload bytes after TLS started
    app_records: int = 0
    app_bytes: int = 0             # application_data record payload (ciphertext)
    app_plaintext_bytes: int = 0   # after decryption
    prelude_bytes: int = 0         # plaintext before TLS started (STARTTLS)


@dataclass(slots=True)
class ConnectionState:
    """Everything the core learnt about one connection (input of the report)."""

    flow_id: int
    client: Endpoint
    server: Endpoint
    syn_seen: bool
    ts_first: float
    frame_first: int
    ts_last: float = 0.0
    is_tls: bool = False
    client_hello: Any = None
    client_hello_2: Any = None      # the second ClientHello after a HelloRetryRequest
    sslv2_client_hello: Any = None
    hello_retry_request: Any = None
    server_hello: Any = None
    version: int | None = None
    cipher_suite: int | None = None
    server_key_exchange: Any = None
    certificate_request: Any = None
    certificates: dict = field(default_factory=lambda: {"server": None, "client": None})
    certificate_ts: dict = field(default_factory=lambda: {"server": None, "client": None})
    certificate_encrypted: dict = field(default_factory=lambda: {"server": False, "client": False})
    # side -> why its CompressedCertificate (RFC 8879) could not be read ("compressed with ... : reason")
    certificate_unreadable: dict | None = None
    alert_likely_from: str | None = None            # TLS 1.3 without keys: "client"/"server" (encrypted_alert_likely)
    ocsp_response: bytes | None = None
    alerts: list = field(default_factory=list)
    timeline: list = field(default_factory=list)
    timeline_truncated: int = 0
    findings: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    prelude: dict = field(default_factory=dict)     # {"client": bytes, "server": bytes}
    finished: dict = field(default_factory=lambda: {"client": False, "server": False})
    renegotiations: int = 0
    session_tickets: int = 0
    key_updates: int = 0
    close_reason: str | None = None
    ts_close: float | None = None
    decryption: Any = None
    http: list = field(default_factory=list)        # first lines of decrypted HTTP/1.x messages
    http_notes: list = field(default_factory=list)  # (code, message) from decrypted HTTP (nginx mTLS errors)
    swapped: bool = False                           # the TCP responder is the TLS client
    quic: dict | None = None                        # QUIC connections: version, connection ids, packets
    dtls: dict | None = None                        # DTLS connections: record version, cookies, records
