"""One TLS connection, both directions: the state machine of the core (sans-I/O).

Fed TCP payload in stream order (``data``/``gap``/``close``), it detects TLS (on any
port, also after a plaintext prelude as in STARTTLS), frames records, reassembles
and decodes handshake messages, follows when each side starts encrypting,
decrypts when a :class:`~tlsscope.decrypt.ConnectionDecryptor` is attached, and
keeps an ordered timeline. ``close()`` returns the :class:`ConnectionState` the
report is built from. Every malformed unit becomes a finding here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .codec import DecodeError
from .findings import Finding, Severity
from .hello import STATUS_REQUEST
from .connection_state import Alert, ConnectionState, DirectionStats, TimelineEntry  # noqa: F401 - re-exported
from .model import Endpoint
from .tls import records as rl
from .tls.handshake import HandshakeDefragmenter, HandshakeNote, RawHandshake
from .tls.context import is_tls13
from .tls.messages import DecodeContext, decode_handshake, decode_sslv2_client_hello

TLS13 = 0x0304
# How much plaintext to look through for a TLS start before calling the stream "not TLS".
DETECT_BUDGET = 32 * 1024
# Bound on the timeline of one connection (application data is coalesced anyway).
MAX_TIMELINE = 4000
# Keep at most this much plaintext prelude for display (STARTTLS dialogues).
PRELUDE_KEEP = 1024

# Handshake types (RFC 8446 §4, RFC 5246 §7.4)
CLIENT_HELLO, SERVER_HELLO, NEW_SESSION_TICKET = 1, 2, 4
CERTIFICATE, SERVER_KEY_EXCHANGE, CERTIFICATE_REQUEST = 11, 12, 13
SERVER_HELLO_DONE, CERTIFICATE_VERIFY, CLIENT_KEY_EXCHANGE = 14, 15, 16
FINISHED, CERTIFICATE_STATUS, KEY_UPDATE, ENCRYPTED_EXTENSIONS = 20, 22, 24, 8
COMPRESSED_CERTIFICATE = 25
DRAFT_HELLO_RETRY_REQUEST = 6     # TLS 1.3 drafts before -22


_NGINX_MTLS = (
    (b"No required SSL certificate was sent", "http_client_certificate_required",
     "the server answered HTTP 400 \"No required SSL certificate was sent\" (nginx ssl_verify_client on): "
     "the client sent no certificate"),
    (b"The SSL certificate error", "http_client_certificate_error",
     "the server answered HTTP 400 \"The SSL certificate error\" (nginx): the client certificate failed "
     "verification (wrong CA, expired or revoked)"),
)



# Decode contexts are frozen values that depend only on the direction, version and suite:
# made once per combination instead of once per handshake message.
_CONTEXTS: dict[tuple, DecodeContext] = {}

# MAC lengths of the NULL-cipher suites' HMACs (RFC 5246 §6.2.3.1)
_MAC_LENGTHS = {"MD5": 16, "SHA": 20, "SHA256": 32, "SHA384": 48}


@dataclass(frozen=True, slots=True)
class _Readable:
    """A record readable without keys (NULL cipher), shaped like a decryption result."""

    content_type: int
    plaintext: bytes


def _coalesced_alerts(body: bytes) -> bool:
    """Is ``body`` a run of plausible 2-byte alerts (known level and description)?"""
    from .registry.protocol import ALERT_DESCRIPTIONS
    return len(body) % 2 == 0 and all(body[i] in (1, 2) and body[i + 1] in ALERT_DESCRIPTIONS
                                      for i in range(0, len(body), 2))

class _Side:
    """Per-direction state; ``a`` is the TCP initiator."""

    __slots__ = ("mode", "records", "hs", "hs_dec", "encrypted", "prelude", "prelude_tail",
                 "stats", "last_app", "seen_data", "decrypt_failed", "last_length")

    def __init__(self):
        self.mode = "detect"      # detect | tls | plain
        self.records: rl.RecordLayer | None = None
        self.hs = HandshakeDefragmenter()
        self.hs_dec: HandshakeDefragmenter | None = None   # made when decrypted handshake data comes
        self.encrypted = False
        self.prelude = bytearray()
        self.prelude_tail = b""
        self.stats = DirectionStats()
        self.last_app: TimelineEntry | None = None
        self.seen_data = False
        self.decrypt_failed = False
        self.last_length = -1     # body length of the last record when it was unreadable application_data


class TlsConnection:
    """Feed one TCP connection's payload; get a ConnectionState."""

    def __init__(self, flow_id: int, client: Endpoint, server: Endpoint, ts: float, frame: int,
                 syn_seen: bool, *, decryptor: Any = None,
                 on_plaintext: Callable[[bool, bytes], None] | None = None,
                 suite_info: Callable[[int], Any] | None = None):
        self.state = ConnectionState(flow_id, client, server, syn_seen, ts, frame, ts_last=ts)
        self._a = _Side()
        self._b = _Side()
        self._swapped = False           # True when the TCP responder turned out to be the TLS client
        if not syn_seen and client.port < server.port:
            # Picked up mid-stream: until a hello says otherwise, the lower port is the server's
            # (as tshark assumes), not the side that happened to send the first captured segment.
            self._swapped = True
        self._decryptor = decryptor
        self._on_plaintext = on_plaintext
        self._suite_info = suite_info
        self._tls13 = False
        self._hs_done_sides: set[bool] = set()
        self.not_tls = False            # the pipeline stops feeding when this turns True
        self.announced = False          # live: the handshake report was already shown
        self._client_flight_after_sh = False
        self._null_mac_suite: int | None = None
        self._null_mac: int | None = None
        self._record_seq: int | None = None   # set by record() for the record being read (DTLS)
        self._record_header: bytes | None = None   # ... and its DTLS 1.3 unified header
        # decrypted handshake record body -> TLS-framed messages (DTLS frames handshake fragments
        # with its own 12-byte header; set by tlsscope.dtls_connection)
        self.unframe_handshake: Callable[[bool, bytes], bytes] | None = None
        # TLS-framed message -> the bytes it adds to the Finished hash, when they differ (DTLS)
        self.transcript_of: Callable[[bool, bytes], bytes | None] | None = None

    # -- helpers -------------------------------------------------------------
    def _side(self, from_a: bool) -> _Side:
        return self._a if from_a else self._b

    def _from_client(self, from_a: bool) -> bool:
        return from_a != self._swapped

    def _finding(self, severity: Severity, code: str, message: str) -> None:
        # The same code and message once per connection: a broken stream must not flood the report.
        f = Finding(severity, code, message)
        if f not in self.state.findings and len(self.state.findings) < 200:
            self.state.findings.append(f)

    def _add(self, entry: TimelineEntry) -> None:
        tl = self.state.timeline
        if len(tl) >= MAX_TIMELINE:
            self.state.timeline_truncated += 1
            return
        tl.append(entry)

    # for the transports that frame TLS themselves (tlsscope.quic_connection, tlsscope.dtls_connection)
    @property
    def decrypting(self) -> bool:
        return self._decryptor is not None

    finding = _finding
    add_entry = _add

    def plaintext(self, from_a: bool, data: bytes) -> None:
        """Application data decrypted elsewhere (QUIC streams), for the on_plaintext consumer (follow)."""
        if self._on_plaintext is not None and data:
            self._on_plaintext(self._from_client(from_a), data)

    def stats_of(self, from_a: bool) -> DirectionStats:
        """The byte and record counters of one direction (a: the side that opened the flow)."""
        return (self._a if from_a else self._b).stats

    # -- input ---------------------------------------------------------------
    def data(self, from_a: bool, data: bytes, ts: float, frame: int) -> None:
        if self.not_tls or not data:
            return
        self.state.ts_last = ts
        side = self._a if from_a else self._b
        side.seen_data = True
        if side.mode == "tls":
            side.stats.bytes += len(data)
            if (self._decryptor is None
                    and (self._tls13 or not side.encrypted or self._null_cipher_mac(side) is None)):
                # Whole application_data records and no keys (most segments): counted without
                # Record objects; the same effect as the per-record fast path in _records.
                got = side.records.feed_app(data, ts, frame)
                if got is not None:
                    self._unreadable_app_data(from_a, side, got[0], got[1], ts, frame, got[2])
                    side.last_length = got[3]
                    return
            items = side.records.feed(data, ts, frame)
            if items:
                self._records(from_a, items)
            return
        if side.mode == "plain":
            return
        self._detect(from_a, side, data, ts, frame)

    def handshake_data(self, from_a: bool, data: bytes, offset: int, ts: float, frame: int, *,
                       decrypted: bool = False) -> None:
        """Handshake bytes that come without TLS records: a QUIC CRYPTO stream (RFC 9001 §4), in
        stream order from ``offset``; ``decrypted`` for those of a protected level (Handshake packets
        opened with the key log). Decoded, checked and kept exactly as from records."""
        if not data:
            return
        self.state.ts_last = ts
        self.state.is_tls = True
        side = self._a if from_a else self._b
        side.seen_data = True
        if decrypted:
            if side.hs_dec is None:
                side.hs_dec = HandshakeDefragmenter()
            defrag = side.hs_dec
        else:
            defrag = side.hs
        for msg in defrag.feed(data, offset, ts, frame):
            if type(msg) is HandshakeNote:
                self._hs_note(from_a, msg)
            else:
                self._handshake(from_a, msg, decrypted=decrypted)

    def record(self, from_a: bool, content_type: int, version: int, fragment: bytes, offset: int, ts: float,
               frame: int, *, seq: int | None = None, header: bytes | None = None) -> None:
        """One record framed elsewhere (a DTLS record, its header removed): the same checks and
        timeline as a TLS record. Handshake records in clear go through handshake_data instead,
        since DTLS frames handshake fragments differently. ``seq``: the record's explicit sequence
        number (DTLS: epoch and sequence), which decryption uses instead of counting records;
        ``header``: the unified header of a DTLS 1.3 protected record (its epoch bits and encrypted
        sequence number; the record is passed as application_data)."""
        self.state.ts_last = ts
        self.state.is_tls = True
        side = self._a if from_a else self._b
        side.seen_data = True
        self._record_seq = seq
        self._record_header = header
        try:
            self._records(from_a, [rl.Record(content_type, version, fragment, offset, ts, frame)])
        finally:
            self._record_seq = self._record_header = None

    def gap(self, from_a: bool, missing: int, ts: float, frame: int) -> None:
        side = self._side(from_a)
        if side.mode == "tls":
            self._records(from_a, side.records.gap(missing, ts, frame))
            side.hs.reset()
            self._finding(Severity.MEDIUM, "tcp_gap",
                          f"{missing} bytes missing in the {'client' if self._from_client(from_a) else 'server'}"
                          " stream (lost or not captured); decoding resumed at the next record")
        elif side.mode == "detect":
            side.prelude_tail = b""

    @property
    def handshake_done(self) -> bool:
        """Both Finished seen (TLS <= 1.2), or the client's encrypted flight after ServerHello (TLS 1.3)."""
        st = self.state
        if st.finished["client"] and st.finished["server"]:
            return True
        return self._tls13 and self._client_flight_after_sh

    def snapshot(self) -> ConnectionState:
        """The state so far, for a report before the connection ends (live capture)."""
        import copy
        st = copy.copy(self.state)
        st.timeline = list(self.state.timeline)
        st.alerts = list(self.state.alerts)
        st.findings = list(self.state.findings)
        st.certificates = dict(self.state.certificates)
        self._finish_state(st)
        return st

    def _finish_state(self, st: ConnectionState) -> None:
        if self._tls13:
            unreadable = st.certificate_unreadable or {}
            for who in ("client", "server"):
                # A side whose Finished was decrypted showed its whole flight: no Certificate in it
                # means none was sent (not "not visible"), unless it came compressed beyond reading.
                if st.finished[who] and st.certificates.get(who) is None and who not in unreadable:
                    st.certificates[who] = []
        st.swapped = self._swapped
        if self._swapped:
            st.client, st.server = self.state.server, self.state.client
        st.stats = {"client": self._side(not self._swapped).stats, "server": self._side(self._swapped).stats}
        st.prelude = {"client": bytes(self._side(not self._swapped).prelude),
                      "server": bytes(self._side(self._swapped).prelude)}
        if self._decryptor is not None:
            st.decryption = self._decryptor

    def close(self, ts: float, frame: int, reason: str):
        st = self.state
        st.close_reason = reason
        st.ts_close = ts
        for from_a in (True, False):
            side = self._side(from_a)
            if side.records is not None:
                self._records(from_a, side.records.finish())
            for note in side.hs.finish():
                self._hs_note(from_a, note)
        if self._tls13 and self._decryptor is None and not st.alerts:
            self._hidden_alert()
        self._finish_state(st)
        return st

    def _hidden_alert(self) -> None:
        """TLS 1.3 without keys: an alert is an application_data record of 2 bytes, the content type and
        the AEAD tag. When one side's last record has exactly that size and the other side's does not,
        that side most likely ended the connection with an alert (both ending so: close_notify, as usual)."""
        tag = 8 if self.state.cipher_suite == 0x1305 else 16      # TLS_AES_128_CCM_8_SHA256
        size = 3 + tag
        client, server = self._side(not self._swapped), self._side(self._swapped)
        ends = {"client": client.last_length == size, "server": server.last_length == size}
        if ends["client"] == ends["server"]:
            return
        who = "client" if ends["client"] else "server"
        other = "server" if who == "client" else "client"
        self.state.alert_likely_from = who
        self._finding(Severity.LOW, "encrypted_alert_likely",
                      f"the {who}'s last record has {size} bytes, the size of an encrypted alert (2 bytes, "
                      f"the content type and the {tag}-byte tag), and the {other}'s does not: most likely the "
                      f"{who} ended the connection with an alert (a fatal one, or a close_notify the {other} did "
                      "not answer); TLS 1.3 encrypts it: give --keylog to read it")

    # -- detection -----------------------------------------------------------
    def _detect(self, from_a: bool, side: _Side, data: bytes, ts: float, frame: int) -> None:
        tail = side.prelude_tail
        buf = tail + data if tail else data
        other = self._side(not from_a)
        start = -1
        at = len(tail)  # this chunk's first byte (a record starts at a segment boundary more often than not)
        if side.stats.prelude_bytes == 0 and not self.state.syn_seen and rl.plausible_header(buf, at, strict=True):
            start = at  # picked up mid-stream: any record type will do
        elif other.mode == "tls" and rl.plausible_header(buf, at, strict=True) and (
                buf[at] in (21, 22) or (buf[at] == 20 and buf[at + 3:at + 5] == b"\x00\x01")):
            # the answer to a ClientHello: handshake or alert, or (its start lost) ChangeCipherSpec
            start = at
        else:
            start = rl.find_tls_start(buf, 0)
        if start < 0:
            keep = data[: max(0, PRELUDE_KEEP - len(side.prelude))]
            side.prelude += keep
            side.stats.prelude_bytes += len(data)
            side.prelude_tail = buf[-5:]
            if side.stats.prelude_bytes > DETECT_BUDGET:
                side.mode = "plain"
                if not self.state.is_tls:
                    self.not_tls = True
            return
        # bytes of this chunk before the TLS start belong to the prelude
        pre = start - len(tail)
        if pre > 0:
            side.prelude += data[: max(0, min(pre, PRELUDE_KEEP - len(side.prelude)))]
            side.stats.prelude_bytes += pre
        side.mode = "tls"
        side.records = rl.RecordLayer(side.stats.prelude_bytes)
        self.state.is_tls = True
        rest = buf[start:]
        side.stats.bytes += len(rest)
        if side.stats.prelude_bytes:
            self._finding(Severity.INFO, "starttls",
                          f"TLS starts after {side.stats.prelude_bytes} bytes of plaintext from the "
                          f"{'client' if self._from_client(from_a) else 'server'} (STARTTLS or similar)")
        self._records(from_a, side.records.feed(rest, ts, frame))

    # -- records -------------------------------------------------------------
    def _records(self, from_a: bool, items: list) -> None:
        side = self._a if from_a else self._b
        Record = rl.Record
        for item in items:
            t = type(item)
            if t is Record:
                if (item.content_type == 23 and self._decryptor is None
                        and (self._tls13 or not side.encrypted or self._null_cipher_mac(side) is None)):
                    # encrypted application data without keys (most records): no general checks
                    self._unreadable_app_data(from_a, side, 1, len(item.fragment), item.ts, item.frame,
                                              item.offset)
                    side.last_length = len(item.fragment)
                    continue
                side.last_length = -1
                self._record(from_a, item)
            elif t is rl.SSLv2Hello:
                self._sslv2(from_a, item)
            else:
                self._record_note(from_a, item)

    def _unreadable_app_data(self, from_a: bool, side: _Side, count: int, nbytes: int, ts: float,
                             frame: int, offset: int) -> None:
        """``count`` application_data records (``nbytes`` of body, the first at ``offset``) that
        cannot be decrypted: what _record/_encrypted_record do for each, counted in one go."""
        stats = side.stats
        stats.records += count
        stats.app_records += count
        stats.app_bytes += nbytes
        if self._tls13 and from_a != self._swapped:
            self._client_flight_after_sh = True
        last = side.last_app
        if last is not None and not last.decrypted:
            last.count += count
            last.length += nbytes
            return
        entry = TimelineEntry(from_a != self._swapped, ts, frame, rl.APPLICATION_DATA, None, "ApplicationData",
                              True, length=nbytes, count=count, offset=offset)
        side.last_app = entry
        self._add(entry)

    def _record_note(self, from_a: bool, note: rl.RecordNote) -> None:
        who = "client" if self._from_client(from_a) else "server"
        sev = Severity.LOW if note.code in ("record_truncated",) else Severity.MEDIUM
        self._finding(sev, note.code, f"{who} stream offset {note.offset}: {note.message}")

    def _record(self, from_a: bool, rec: rl.Record) -> None:
        side = self._side(from_a)
        side.stats.records += 1
        from_client = self._from_client(from_a)
        ct = rec.content_type
        if ct != rl.APPLICATION_DATA:
            side.last_app = None
        if ct == rl.CHANGE_CIPHER_SPEC:
            self._change_cipher_spec(from_a, side, rec)
            return
        # TLS 1.3 protects every record as outer type application_data (RFC 8446 §5.2): an outer
        # alert/handshake is plaintext (e.g. a client aborting before it installed handshake keys).
        encrypted = (ct == rl.APPLICATION_DATA) or (side.encrypted and not self._tls13)
        if encrypted and ct in (rl.ALERT, rl.HANDSHAKE, rl.APPLICATION_DATA, rl.HEARTBEAT):
            self._encrypted_record(from_a, side, rec)
            return
        if ct == rl.HANDSHAKE:
            self._handshake_bytes(from_a, side.hs, rec.fragment, rec, decrypted=False)
        elif ct == rl.ALERT:
            self._alert(from_a, rec.fragment, rec, encrypted=False, decrypted=False)
        elif ct == rl.HEARTBEAT:
            self._add(TimelineEntry(from_client, rec.ts, rec.frame, ct, None, "Heartbeat", False,
                                    length=len(rec.fragment), offset=rec.offset))
            self._finding(Severity.MEDIUM, "heartbeat_record", "Heartbeat record sent in clear")
        else:
            self._add(TimelineEntry(from_client, rec.ts, rec.frame, ct, None,
                                    f"Unknown record type {ct}", side.encrypted, length=len(rec.fragment),
                                    offset=rec.offset))
            self._finding(Severity.MEDIUM, "unknown_content_type",
                          f"record with unknown content type {ct} ({len(rec.fragment)} bytes) kept raw")

    def _change_cipher_spec(self, from_a: bool, side: _Side, rec: rl.Record) -> None:
        st = self.state
        from_client = self._from_client(from_a)
        # TLS 1.3's middlebox-compatibility CCS (RFC 8446 D.4) is plaintext and changes nothing: after
        # a HelloRetryRequest, or a client's right after a ClientHello offering TLS 1.3 (0-RTT) when
        # no ServerHello was seen (a TLS <= 1.2 client sends ClientKeyExchange before its CCS).
        compat = self._tls13 or st.hello_retry_request is not None or (from_client and self._early_client_ccs())
        # Inside an encrypted channel (renegotiation) the CCS itself is encrypted with the old keys.
        encrypted = side.encrypted and not compat
        body, decrypted = rec.fragment, False
        if encrypted and self._decryptor is not None:
            res = self._decryptor.decrypt(from_client, rec.content_type, rec.legacy_version, rec.fragment,
                                          seq=self._record_seq)
            if res is not None and hasattr(res, "plaintext"):
                body, decrypted = res.plaintext, True
        self._add(TimelineEntry(from_client, rec.ts, rec.frame, rec.content_type, None, "ChangeCipherSpec",
                                encrypted, decrypted, length=len(body), offset=rec.offset))
        if (not encrypted or decrypted) and body != b"\x01":
            self._finding(Severity.LOW, "ccs_malformed",
                          f"ChangeCipherSpec with body {body[:8].hex()} (expected 01)")
        if not compat:
            side.encrypted = True
            side.hs.reset()
            if side.hs_dec is not None:
                side.hs_dec.reset()
            if self._decryptor is not None:
                self._decryptor.observe_change_cipher_spec(from_client)

    def _early_client_ccs(self) -> bool:
        """A client CCS right after a ClientHello offering TLS 1.3, before any ServerHello (0-RTT)."""
        st = self.state
        if st.client_hello is None or st.server_hello is not None:
            return False
        from .hello import supported_versions
        if not any(is_tls13(v) for v in supported_versions(st.client_hello)):
            return False
        for e in reversed(st.timeline):
            if e.from_client and e.content_type == rl.HANDSHAKE:
                return e.handshake_type == CLIENT_HELLO
        return False

    def _null_cipher_mac(self, side: _Side) -> int | None:
        """MAC length when the negotiated TLS <= 1.2 suite encrypts with NULL, else None."""
        if not side.encrypted or self._tls13 or self.state.cipher_suite is None or self._suite_info is None:
            return None
        suite = self.state.cipher_suite
        if suite == self._null_mac_suite:       # asked for every record: remember the last answer
            return self._null_mac
        info = self._suite_info(suite)
        mac = None if info is None or not info.null_cipher else _MAC_LENGTHS.get(info.mac)
        self._null_mac_suite = suite
        self._null_mac = mac
        return mac

    def _encrypted_record(self, from_a: bool, side: _Side, rec: rl.Record) -> None:
        from_client = self._from_client(from_a)
        ct = rec.content_type
        if from_client and self._tls13:
            self._client_flight_after_sh = True
        if self._decryptor is not None:
            res = self._decryptor.decrypt(from_client, ct, rec.legacy_version, rec.fragment, seq=self._record_seq,
                                          header=self._record_header)
            if res is not None and hasattr(res, "plaintext"):
                self._decrypted(from_a, side, rec, res)
                return
            null_mac = self._null_cipher_mac(side)
            if res is not None and not side.decrypt_failed and null_mac is None:
                side.decrypt_failed = True
                self._finding(Severity.MEDIUM, "decryption_failed",
                              f"{'client' if from_client else 'server'}: {res.reason}")
        null_mac = self._null_cipher_mac(side)
        if null_mac is not None and len(rec.fragment) >= null_mac:
            # A NULL-cipher suite protects nothing: the fragment is the plaintext followed by the MAC.
            self._decrypted(from_a, side, rec, _Readable(ct, rec.fragment[:len(rec.fragment) - null_mac]))
            return
        if ct == rl.APPLICATION_DATA:
            side.stats.app_records += 1
            side.stats.app_bytes += len(rec.fragment)
            last = side.last_app
            if last is not None and not last.decrypted:
                last.count += 1
                last.length += len(rec.fragment)
                return
            entry = TimelineEntry(from_client, rec.ts, rec.frame, ct, None, "ApplicationData", True,
                                  length=len(rec.fragment), offset=rec.offset)
            side.last_app = entry
            self._add(entry)
        elif ct == rl.ALERT:
            self._add(TimelineEntry(from_client, rec.ts, rec.frame, ct, None, "Encrypted Alert", True,
                                    length=len(rec.fragment), offset=rec.offset))
            self.state.alerts.append(Alert(from_client, None, None, True, False, rec.ts, rec.frame))
        elif ct == rl.HANDSHAKE:
            self._add(TimelineEntry(from_client, rec.ts, rec.frame, ct, None, "Encrypted Handshake Message",
                                    True, length=len(rec.fragment), offset=rec.offset))
            if not self._tls13:
                # TLS <= 1.2: the first encrypted handshake message after CCS is Finished.
                self.state.finished["client" if from_client else "server"] = True
        else:
            self._add(TimelineEntry(from_client, rec.ts, rec.frame, ct, None, "Encrypted Heartbeat", True,
                                    length=len(rec.fragment), offset=rec.offset))

    def _decrypted(self, from_a: bool, side: _Side, rec: rl.Record, res) -> None:
        from_client = self._from_client(from_a)
        ct = res.content_type
        if ct != rl.APPLICATION_DATA:
            side.last_app = None
        if ct == rl.HANDSHAKE:
            if side.hs_dec is None:
                side.hs_dec = HandshakeDefragmenter()
            data = res.plaintext
            if self.unframe_handshake is not None:
                data = self.unframe_handshake(from_a, data)
            self._handshake_bytes(from_a, side.hs_dec, data, rec, decrypted=True)
        elif ct == rl.ALERT:
            self._alert(from_a, res.plaintext, rec, encrypted=True, decrypted=True)
        elif ct == rl.APPLICATION_DATA:
            side.stats.app_records += 1
            side.stats.app_bytes += len(rec.fragment)
            side.stats.app_plaintext_bytes += len(res.plaintext)
            if self._on_plaintext is not None:
                self._on_plaintext(from_client, res.plaintext)
            self._sniff_http(from_client, res.plaintext)
            last = side.last_app
            if last is not None and last.decrypted:
                last.count += 1
                last.length += len(res.plaintext)
                return
            entry = TimelineEntry(from_client, rec.ts, rec.frame, ct, None, "ApplicationData", True,
                                  decrypted=True, length=len(res.plaintext), offset=rec.offset)
            side.last_app = entry
            self._add(entry)
        elif ct == rl.CHANGE_CIPHER_SPEC:
            self._add(TimelineEntry(from_client, rec.ts, rec.frame, ct, None, "ChangeCipherSpec", True,
                                    decrypted=True, length=len(res.plaintext), offset=rec.offset))
        elif ct == rl.ACK and self.state.dtls is not None:
            self._ack(from_client, rec, res.plaintext)
        else:
            self._add(TimelineEntry(from_client, rec.ts, rec.frame, ct, None,
                                    "Heartbeat" if ct == rl.HEARTBEAT else f"Unknown record type {ct}",
                                    True, decrypted=True, length=len(res.plaintext), offset=rec.offset))

    def _ack(self, from_client: bool, rec: rl.Record, body: bytes) -> None:
        """A DTLS 1.3 ACK (RFC 9147 §7): the record numbers it acknowledges, as (epoch, sequence)."""
        from .dtls import decode_ack
        numbers, error = None, None
        try:
            numbers = decode_ack(body)
        except DecodeError as exc:
            error = str(exc)
            self._finding(Severity.MEDIUM, "dtls_ack_malformed",
                          f"{'client' if from_client else 'server'} ACK in frame {rec.frame}: {exc}")
        self._add(TimelineEntry(from_client, rec.ts, rec.frame, rl.ACK, None, "ACK", True, decrypted=True,
                                length=len(body), message=numbers, error=error, offset=rec.offset))

    def _compressed_certificate(self, from_client: bool, msg, raw: RawHandshake, decrypted: bool) -> None:
        """RFC 8879: the Certificate message inside, handled as if it had come as it is."""
        from .tls import certcompress
        who = "client" if from_client else "server"
        name = certcompress.NAMES.get(msg.algorithm, f"algorithm {msg.algorithm}")
        try:
            body = certcompress.decompress(msg.algorithm, msg.compressed_certificate_message, msg.uncompressed_length)
            inner = decode_handshake(CERTIFICATE, body, self._context(from_client), 0)
        except (certcompress.CompressionError, DecodeError) as exc:
            why = f"compressed with {name} (RFC 8879) and could not be read: {exc}"
            if self.state.certificate_unreadable is None:
                self.state.certificate_unreadable = {}
            self.state.certificate_unreadable[who] = why
            self._finding(Severity.LOW, "certificate_not_decompressed", f"the {who}'s Certificate is {why}")
            return
        self._apply(from_client, CERTIFICATE, inner, raw, decrypted)

    def _sniff_http(self, from_client: bool, data: bytes) -> None:
        if len(self.state.http) >= 20:
            return
        head = data[:200]
        line = head.split(b"\r\n", 1)[0]
        if from_client and line[:8].split(b" ", 1)[0] in (b"GET", b"POST", b"PUT", b"HEAD", b"DELETE",
                                                            b"OPTIONS", b"PATCH", b"CONNECT"):
            self.state.http.append(("client", line.decode("latin-1")))
        elif not from_client and line.startswith(b"HTTP/1."):
            self.state.http.append(("server", line.decode("latin-1")))
            # nginx answers mutual-TLS failures with HTTP 400 inside the TLS session
            for marker, code, text in _NGINX_MTLS:
                if marker in data[:4096]:
                    self.state.http_notes.append((code, text))

    def _alert(self, from_a: bool, body: bytes, rec: rl.Record, *, encrypted: bool, decrypted: bool) -> None:
        from_client = self._from_client(from_a)
        if not encrypted and len(body) > 2 and not _coalesced_alerts(body):
            # An alert is 2 bytes; a longer record that is not a run of valid alerts was encrypted
            # under keys whose start we did not see (capture picked up mid-stream, lost CCS).
            self._add(TimelineEntry(from_client, rec.ts, rec.frame, rl.ALERT, None, "Encrypted Alert", True,
                                    length=len(body), offset=rec.offset))
            self.state.alerts.append(Alert(from_client, None, None, True, False, rec.ts, rec.frame))
            self._finding(Severity.LOW, "alert_assumed_encrypted",
                          f"{'client' if from_client else 'server'}: alert record of {len(body)} bytes taken as "
                          "encrypted (the start of encryption was not seen)")
            return
        # several alerts may share a record (TLS <= 1.2); a lone odd byte is malformed
        for i in range(0, max(len(body), 1), 2):
            pair = body[i:i + 2]
            if len(pair) != 2:
                self._finding(Severity.MEDIUM, "alert_malformed",
                              f"alert record of {len(body)} bytes is not a sequence of 2-byte alerts")
                self._add(TimelineEntry(from_client, rec.ts, rec.frame, rl.ALERT, None, "Alert", encrypted,
                                        decrypted, len(body), error="malformed alert", offset=rec.offset))
                return
            alert = Alert(from_client, pair[0], pair[1], encrypted, decrypted, rec.ts, rec.frame)
            self.state.alerts.append(alert)
            self._add(TimelineEntry(from_client, rec.ts, rec.frame, rl.ALERT, None, "Alert", encrypted,
                                    decrypted, 2, message=alert, offset=rec.offset))

    def _sslv2(self, from_a: bool, hello: rl.SSLv2Hello) -> None:
        from_client = self._from_client(from_a)
        side = self._side(from_a)
        side.stats.records += 1
        try:
            msg = decode_sslv2_client_hello(hello.body[1:], hello.offset + hello.header_len + 1)
            err = None
        except DecodeError as e:
            msg, err = None, str(e)
            self._finding(Severity.MEDIUM, "handshake_malformed", f"SSLv2-compatible ClientHello: {e}")
        if msg is not None:
            if not from_client:
                self._swapped = not self._swapped
                from_client = True
            self.state.sslv2_client_hello = msg
            if self._decryptor is not None:
                # The transcript of an SSLv2-format hello is its message bytes (RFC 5246 E.2).
                self._decryptor.observe_sslv2_client_hello(hello.body)
        self._add(TimelineEntry(from_client, hello.ts, hello.frame, rl.HANDSHAKE, CLIENT_HELLO,
                                "SSLv2ClientHello", False, length=len(hello.body), message=msg, error=err,
                                raw=hello.body, offset=hello.offset))

    def _handshake_bytes(self, from_a: bool, defrag: HandshakeDefragmenter, data: bytes, rec: rl.Record,
                         *, decrypted: bool) -> None:
        """Handshake bytes of one record (plaintext, or decrypted) through their defragmenter."""
        for msg in defrag.feed(data, rec.offset, rec.ts, rec.frame):
            if type(msg) is HandshakeNote:
                self._hs_note(from_a, msg)
            else:
                self._handshake(from_a, msg, decrypted=decrypted)

    def _hs_note(self, from_a: bool, note: HandshakeNote) -> None:
        who = "client" if self._from_client(from_a) else "server"
        self._finding(Severity.MEDIUM if note.code == "handshake_truncated" else Severity.HIGH, note.code,
                      f"{who} stream offset {note.offset}: {note.message}")

    # -- handshake messages --------------------------------------------------
    def _context(self, from_client: bool) -> DecodeContext:
        suite = self.state.cipher_suite
        key = (from_client, self.state.version, suite, self._suite_info)
        ctx = _CONTEXTS.get(key)
        if ctx is not None:
            return ctx
        kx = None
        signed = True
        if suite is not None and self._suite_info is not None:
            info = self._suite_info(suite)
            if info is not None:
                kx = info.key_exchange
                signed = not info.anonymous
        ctx = DecodeContext(from_client, self.state.version, kx, signed)
        if len(_CONTEXTS) >= 4096:
            _CONTEXTS.clear()
        _CONTEXTS[key] = ctx
        return ctx

    def _handshake(self, from_a: bool, raw: RawHandshake, *, decrypted: bool) -> None:
        st = self.state
        mt = raw.msg_type
        from_client = self._from_client(from_a)
        if mt == CLIENT_HELLO and st.client_hello is None and not from_client:
            # The TCP responder sent the ClientHello: the capture began mid-stream or roles are unusual.
            self._swapped = not self._swapped
            from_client = True
        elif (mt == SERVER_HELLO and from_client and not decrypted and st.client_hello is None
              and st.sslv2_client_hello is None and st.server_hello is None and st.hello_retry_request is None):
            # No ClientHello seen (mid-stream pick-up): the ServerHello's sender is the server.
            self._swapped = not self._swapped
            from_client = False
        err = None
        msg = None
        try:
            msg = decode_handshake(mt, raw.body, self._context(from_client), raw.offset + 5)
        except DecodeError as e:
            err = f"{e.path or 'message'} at offset {e.offset}: {e.reason}"
            self._finding(Severity.MEDIUM, "handshake_malformed",
                          f"{'client' if from_client else 'server'} handshake message type {mt}: {err}")
        name = type(msg).__name__ if msg is not None else None
        if name is None or name == "UnknownHandshake":
            from .registry import handshake_type_name
            name = handshake_type_name(mt)
        if msg is not None and mt == SERVER_HELLO and getattr(msg, "is_hello_retry_request", False):
            name = "HelloRetryRequest"
        self._add(TimelineEntry(from_client, raw.ts, raw.frame, rl.HANDSHAKE, mt, name,
                                decrypted, decrypted, len(raw.body), message=msg, error=err, raw=raw.raw,
                                offset=raw.offset))
        if self._decryptor is not None:
            self._decryptor.observe_handshake(
                from_client, raw.raw, None if self.transcript_of is None else self.transcript_of(from_a, raw.raw))
        if msg is None:
            return
        # A malformed extension body stays inside its Extension (the message still decodes): report it.
        bad = [ext for ext in getattr(msg, "extensions", None) or () if getattr(ext, "error", None) is not None]
        if bad:
            more = f" (and {len(bad) - 1} more: {', '.join(str(e.type) for e in bad[1:8])})" if bad[1:] else ""
            self._finding(Severity.MEDIUM, "extension_malformed",
                          f"{'client' if from_client else 'server'} {name} extension {bad[0].type}: "
                          f"{bad[0].error}{more}")
        self._apply(from_client, mt, msg, raw, decrypted)

    def _apply(self, from_client: bool, mt: int, msg, raw: RawHandshake, decrypted: bool) -> None:
        st = self.state
        who = "client" if from_client else "server"
        if mt == CLIENT_HELLO:
            if st.client_hello is None:
                st.client_hello = msg
            elif st.server_hello is None:
                # a retry after HelloRetryRequest (or one whose HRR was not captured): not a renegotiation
                if st.client_hello_2 is None:
                    st.client_hello_2 = msg
            else:
                st.renegotiations += 1
        elif mt == SERVER_HELLO:
            if getattr(msg, "is_hello_retry_request", False):
                st.hello_retry_request = msg
                st.cipher_suite = msg.cipher_suite
                return
            if st.server_hello is None:
                st.server_hello = msg
                st.version = msg.selected_version
                st.cipher_suite = msg.cipher_suite
                if is_tls13(st.version):            # drafts (0x7fxx, 0xfbxx) included
                    self._tls13 = True
                    # RFC 8446 §2: everything after ServerHello is encrypted in both directions.
                    self._a.encrypted = True
                    self._b.encrypted = True
        elif mt == DRAFT_HELLO_RETRY_REQUEST:
            st.hello_retry_request = msg
            if msg.cipher_suite is not None:
                st.cipher_suite = msg.cipher_suite
        elif mt == CERTIFICATE:
            ders = [e.cert_data for e in msg.certificate_list]
            st.certificates[who] = ders
            st.certificate_ts[who] = raw.ts
            st.certificate_encrypted[who] = decrypted
            if not from_client and msg.certificate_list:
                # TLS 1.3 staples the OCSP response in the leaf's entry (RFC 8446 §4.4.2.1), not in
                # a CertificateStatus message
                for ext in msg.certificate_list[0].extensions:
                    if ext.type == STATUS_REQUEST and getattr(ext.value, "status_type", None) == 1:
                        st.ocsp_response = ext.value.response
        elif mt == SERVER_KEY_EXCHANGE:
            st.server_key_exchange = msg
        elif mt == CERTIFICATE_REQUEST:
            st.certificate_request = msg
        elif mt == COMPRESSED_CERTIFICATE:
            self._compressed_certificate(from_client, msg, raw, decrypted)
        elif mt == CERTIFICATE_STATUS:
            st.ocsp_response = getattr(msg, "response", None)
        elif mt == FINISHED:
            st.finished[who] = True
        elif mt == NEW_SESSION_TICKET:
            st.session_tickets += 1
        elif mt == KEY_UPDATE:
            st.key_updates += 1
