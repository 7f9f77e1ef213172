"""QUIC connections of a capture: the TLS handshake they carry, and their packets (sans-I/O).

QUIC carries the TLS 1.3 handshake in CRYPTO frames instead of records (RFC 9001 §4). Initial
packets are protected with keys that anyone can derive from the client's first Destination
Connection ID (RFC 9001 §5.2), so the ClientHello and ServerHello are readable without secrets.
Handshake and 1-RTT packets are counted, and decrypted when the key log holds the connection's
secrets (looked up by the ClientHello's random once the ServerHello names the suite): then the
server's certificates, both Finished and the application's closing show as over TCP.

A UDP address pair becomes a QUIC connection when a datagram starting with an Initial packet
arrives on it; its sender is the client. The CRYPTO stream of each direction is reassembled
(:class:`tlsscope.quic.CryptoStream`) and fed to a :class:`~tlsscope.connection.TlsConnection`,
so handshake messages are decoded, checked and reported exactly as over TCP.

Flows, their ageing and closing are those of :mod:`tlsscope.udp_flows`.
"""

from __future__ import annotations

from typing import Callable

from .connection import TlsConnection
from .connection_state import Alert, TimelineEntry
from .findings import Severity
from .hello import EARLY_DATA, extension_types
from .model import Datagram
from .quic import CryptoStream, InitialDecoder, looks_like_quic, split_datagram
from .udp_flows import UdpFlow, UdpFlowTable

ALERT, HANDSHAKE, FINISHED = 21, 22, 20
HANDSHAKE_BYTES_MAX = 256 * 1024
MAX_STREAMS = 256            # QUIC streams followed per connection
# CONNECTION_CLOSE error codes 0x0100-0x01ff carry a TLS alert (RFC 9001 §4.8)
CRYPTO_ERROR_BASE = 0x0100
KINDS = ("initial", "0rtt", "handshake", "retry", "version_negotiation", "1rtt")


# key log labels of the secrets of each packet protection level (RFC 9001 §5.1)
_SECRETS = (("handshake", True, "CLIENT_HANDSHAKE_TRAFFIC_SECRET"),
            ("handshake", False, "SERVER_HANDSHAKE_TRAFFIC_SECRET"),
            ("1rtt", True, "CLIENT_TRAFFIC_SECRET_0"),
            ("1rtt", False, "SERVER_TRAFFIC_SECRET_0"))
_ENCRYPTED_NAMES = {"handshake": "QUIC Handshake packet", "0rtt": "QUIC 0-RTT packet", "1rtt": "QUIC 1-RTT packet"}


class _QuicFlow(UdpFlow):
    __slots__ = ("decoder", "crypto", "delivered", "overflow_told", "info", "keys", "decrypted", "failures",
                 "problems", "handshake_bytes", "secrets", "verified", "streams", "after_retry", "early")

    def __init__(self, fid: int, conn: TlsConnection, decoder: InitialDecoder, key_c: tuple, key_s: tuple,
                 ts: float, frame: int, info: dict):
        super().__init__(fid, conn, key_c, key_s, ts, frame)
        self.decoder = decoder
        # one CRYPTO stream per level and direction (each level's offsets start at 0)
        self.crypto = {(lvl, c): CryptoStream() for lvl in ("initial", "handshake", "1rtt") for c in (True, False)}
        self.delivered = dict.fromkeys(self.crypto, 0)
        self.overflow_told: set = set()
        self.info = info
        self.keys: list[str] | None = None      # key log labels installed (None: not looked up yet)
        self.decrypted = 0                      # packets opened with key-log keys
        self.failures = 0
        self.problems: list[str] = []
        # the handshake messages of the Initial and Handshake levels, per direction, kept for the
        # Finished check until it is done (None: dropped; no secrets, past the bound, or done)
        self.handshake_bytes: dict | None = {key: bytearray() for key in self.crypto if key[0] != "1rtt"}
        self.secrets: dict[str, bytes] = {}     # handshake traffic secrets found in the key log
        self.verified: dict = {"client": None, "server": None}
        self.streams: dict[tuple[bool, int], CryptoStream] = {}   # (from client, stream ID): decrypted data
        self.after_retry: bytearray | None = None   # see QuicFlows._after_retry
        self.early: bytes | None = None         # CLIENT_EARLY_TRAFFIC_SECRET, once looked up (b"": none)

    def status(self) -> dict:
        """The report's "decryption" entry (the shape ConnectionDecryptor.status gives over TCP)."""
        keys = set(self.keys or ())
        if self.early:
            keys.add("CLIENT_EARLY_TRAFFIC_SECRET")
        return {"keys_found": sorted(keys), "used": self.decrypted > 0, "method": "quic",
                "version": self.conn.state.version, "cipher_suite": self.conn.state.cipher_suite,
                "records_decrypted": self.decrypted, "failures": self.failures, "early_data_skipped": 0,
                "finished_verified": dict(self.verified), "problems": list(self.problems)}

    def keep(self, key: tuple, data: bytes) -> None:
        """CRYPTO bytes handed on; once the client's Finished is in, both Finished are checked and the
        bytes dropped."""
        hb = self.handshake_bytes
        if hb is None or key not in hb:
            return
        kept = hb[key]
        kept += data
        if len(kept) > HANDSHAKE_BYTES_MAX:
            self.handshake_bytes = None
        elif key == ("handshake", True):
            got = self._finished_verified()
            if got["client"] is not None:
                self.verified = got
                self.handshake_bytes = None

    def _finished_verified(self) -> dict:
        """Both Finished checked as TLS 1.3 does (RFC 8446 §4.4.4) over the CRYPTO streams: the
        transcript is ClientHello, ServerHello, the server's Handshake-level flight, then the client's."""
        out: dict = {"client": None, "server": None}
        hb = self.handshake_bytes
        suite = self.conn.state.cipher_suite
        if suite is None or hb is None:
            return out
        from .decrypt import tls13
        hash_name = "sha384" if suite == 0x1302 else "sha256"
        ch, sh = _messages(hb[("initial", True)]), _messages(hb[("initial", False)])
        if len(ch) != 1 or len(sh) != 1:
            return out                   # a HelloRetryRequest (message_hash): not checked here
        transcript = ch[0] + sh[0]
        for from_client, label in ((False, "SERVER_HANDSHAKE_TRAFFIC_SECRET"), (True, "CLIENT_HANDSHAKE_TRAFFIC_SECRET")):
            flight = _messages(hb[("handshake", from_client)])
            fin = next((i for i, m in enumerate(flight) if m[0] == FINISHED), None)
            secret = self.secrets.get(label)
            if fin is None or secret is None:
                return out
            transcript += b"".join(flight[:fin])
            expected = tls13.finished_verify_data(hash_name, secret, tls13.hash_bytes(hash_name, bytes(transcript)))
            out["client" if from_client else "server"] = expected == flight[fin][4:]
            transcript += flight[fin]
        return out


def _messages(data: bytes) -> list[bytes]:
    """Whole handshake messages (with their 4-byte headers) at the start of ``data``."""
    out, pos, n = [], 0, len(data)
    while n - pos >= 4:
        end = pos + 4 + int.from_bytes(data[pos + 1:pos + 4], "big")
        if end > n:
            break
        out.append(bytes(data[pos:end]))
        pos = end
    return out


class QuicFlows(UdpFlowTable):
    """Every QUIC connection of a capture, by UDP address pair (bounded)."""

    def __init__(self, new_id: Callable[[], int], connect: Callable[..., TlsConnection], *,
                 idle_timeout: float = 120.0, max_flows: int = 50_000, keylog: Callable[[], object] | None = None):
        super().__init__(new_id, connect, idle_timeout=idle_timeout, max_flows=max_flows)
        self._keylog = keylog or (lambda: None)

    def opens(self, dg: Datagram):
        """Only a client's Initial opens a connection we can read. A server's Initial looks the same,
        but its keys come from the client's connection ID, not from its own header's: the trial
        opening tells them apart (a server Initial captured before the client's opens nothing)."""
        if not looks_like_quic(dg.payload):
            return None
        packets = split_datagram(dg.payload)
        if not packets or packets[0].kind != "initial" or packets[0].error is not None:
            return None
        first = packets[0]
        trial = InitialDecoder(first.version, first.dcid).datagram(dg.payload, True)
        if not trial or trial[0].error is not None:
            return None
        return first

    def make(self, fid: int, conn: TlsConnection, key_c: tuple, key_s: tuple, dg: Datagram, first) -> _QuicFlow:
        info = {"version": first.version, "original_dcid": first.dcid.hex(),
                "client_scid": first.scid.hex(), "server_scid": None,
                "packets": {"client": dict.fromkeys(KINDS, 0), "server": dict.fromkeys(KINDS, 0)},
                "undecryptable_initials": 0, "close": None}
        conn.state.quic = info
        return _QuicFlow(fid, conn, InitialDecoder(first.version, first.dcid), key_c, key_s, dg.ts, dg.frame, info)

    def read(self, flow: _QuicFlow, dg: Datagram, from_client: bool) -> None:
        conn = flow.conn
        stats = conn.stats_of(from_client)        # a: the client (it sent the first Initial)
        stats.bytes += len(dg.payload)
        # packet by packet: keys installed after the ServerHello open the Handshake packets coalesced
        # behind it in the same datagram
        for pkt in flow.decoder.iter_datagram(dg.payload, from_client):
            self._packet(flow, pkt, dg, from_client)

    def _packet(self, flow: _QuicFlow, pkt, dg: Datagram, from_client: bool) -> None:
        """One packet: counted, its CRYPTO data, its closing and its timeline entry."""
        conn = flow.conn
        who = "client" if from_client else "server"
        stats = conn.stats_of(from_client)
        kind = pkt.kind
        counts = flow.info["packets"][who]
        counts[kind] = counts.get(kind, 0) + 1
        stats.records += 1
        if not from_client and pkt.scid and flow.info["server_scid"] is None and kind in ("initial", "handshake"):
            flow.info["server_scid"] = pkt.scid.hex()
        if kind == "retry" and not from_client and pkt.error is None and flow.after_retry is None:
            # after a Retry the client starts its Initial CRYPTO stream again: the same ClientHello
            # (most clients) or a new one (the one the server answers and the key log names)
            key = ("initial", True)
            flow.crypto[key] = CryptoStream()
            flow.delivered[key] = 0
            flow.after_retry = bytearray()
        if pkt.error is not None:
            if kind == "initial":
                flow.info["undecryptable_initials"] += 1
            elif pkt.error.startswith("decryption failed"):
                flow.failures += 1
                if len(flow.problems) < 10:
                    flow.problems.append(f"{who} {kind} packet in frame {dg.frame}: {pkt.error}")
            conn.finding(Severity.MEDIUM, "quic_packet_unreadable",
                         f"{who} QUIC {kind} packet in frame {dg.frame}: {pkt.error}")
            if kind in _ENCRYPTED_NAMES:
                self._encrypted(conn, from_client, kind, pkt, dg, False)
            return
        decrypted = kind != "initial" and pkt.decrypted
        if kind in _ENCRYPTED_NAMES:
            self._encrypted(conn, from_client, kind, pkt, dg, decrypted)
        if decrypted:
            flow.decrypted += 1
        if kind == "1rtt":
            stats.app_records += 1
            stats.app_bytes += pkt.length
            if decrypted:
                stats.app_plaintext_bytes += pkt.stream_bytes + pkt.datagram_bytes
        if decrypted and pkt.streams:
            self._streams(flow, from_client, pkt.streams)
        if pkt.crypto and (kind == "initial" or decrypted):
            level = kind                            # each level has its own CRYPTO stream
            d = (level, from_client)
            stream = flow.crypto[d]
            for offset, data in pkt.crypto:
                got = stream.add(offset, data)
                if got and flow.after_retry is not None and d == ("initial", True):
                    got = self._after_retry(flow, got)
                if got:
                    conn.handshake_data(from_client, got, flow.delivered[d], dg.ts, dg.frame,
                                        decrypted=decrypted)
                    flow.delivered[d] += len(got)
                    flow.keep(d, got)
            if stream.overflow and d not in flow.overflow_told:
                flow.overflow_told.add(d)
                conn.finding(Severity.MEDIUM, "quic_crypto_overflow",
                             f"{who} {level} CRYPTO stream: more than {stream.max_pending} bytes wait behind a "
                             "hole; frames beyond were dropped")
            if flow.early is None and conn.state.client_hello is not None:
                self._install_early(flow)
            if flow.keys is None and conn.state.server_hello is not None:
                self._install_keys(flow)
        if pkt.close is not None:
            self._connection_close(conn, from_client, pkt.close, dg, kind, decrypted)

    @staticmethod
    def _after_retry(flow: _QuicFlow, got: bytes) -> bytes:
        """The client's Initial CRYPTO bytes after a Retry, held until its ClientHello is whole: the
        same ClientHello again is a retransmission (dropped); a new one is handed on as the start of a
        new stream (its transcript replaces the first's)."""
        buf = flow.after_retry
        buf += got
        msgs = _messages(buf)
        if not msgs and len(buf) < HANDSHAKE_BYTES_MAX:
            return b""
        flow.after_retry = None
        first = next((e.raw for e in flow.conn.state.timeline if e.from_client and e.handshake_type == 1), None)
        if msgs and first is not None and msgs[0] == bytes(first):
            flow.delivered[("initial", True)] = len(msgs[0])
            return bytes(buf[len(msgs[0]):])
        if flow.handshake_bytes is not None:
            flow.handshake_bytes[("initial", True)] = bytearray()
        return bytes(buf)

    @staticmethod
    def _streams(flow: _QuicFlow, from_client: bool, frames: list) -> None:
        """STREAM frames, each stream reassembled on its own (bounded), handed on in order."""
        for stream_id, offset, data, _fin in frames:
            key = (from_client, stream_id)
            stream = flow.streams.get(key)
            if stream is None:
                if len(flow.streams) >= MAX_STREAMS:
                    continue                    # many streams: the first MAX_STREAMS are followed
                stream = flow.streams[key] = CryptoStream()
            got = stream.add(offset, data)
            if got:
                flow.conn.plaintext(from_client, got)

    def _install_early(self, flow: _QuicFlow) -> None:
        """The ClientHello is whole: with early data offered and its secret in the key log, the 0-RTT
        packets that follow can be opened (the suite is found on the first one, see install_early)."""
        hello = flow.conn.state.client_hello
        keylog = self._keylog()
        flow.early = b""
        if keylog is None or EARLY_DATA not in extension_types(hello):
            return
        secret = keylog.secret(bytes(hello.random), "CLIENT_EARLY_TRAFFIC_SECRET")
        if secret is not None and flow.decoder.install_early(secret, hello.cipher_suites):
            flow.early = secret
            flow.conn.state.decryption = flow

    def _install_keys(self, flow: _QuicFlow) -> None:
        """Once the ServerHello names the suite: the key log's secrets for this ClientHello's random."""
        st = flow.conn.state
        keylog = self._keylog()
        flow.keys = []
        if keylog is None or st.client_hello is None or st.cipher_suite is None:
            return
        hello = st.client_hello_2 or st.client_hello      # the one answered (after a Retry: the second)
        random = bytes(hello.random)
        for level, from_client, label in _SECRETS:
            secret = keylog.secret(random, label)
            if secret is not None and flow.decoder.install(level, from_client, st.cipher_suite, secret):
                flow.keys.append(label)
                flow.secrets[label] = secret
        if flow.early and not flow.decoder.installed("0rtt", True):
            # no 0-RTT packet came before the ServerHello: accepted early data uses its suite
            flow.decoder.install("0rtt", True, st.cipher_suite, flow.early)
        if not flow.secrets:
            flow.handshake_bytes = None         # nothing to check the Finished with
        if flow.keys:
            st.decryption = flow
        elif len(keylog):
            flow.problems.append("no secrets in the key log for this ClientHello's random")
            st.decryption = flow

    @staticmethod
    def _encrypted(conn: TlsConnection, from_client: bool, kind: str, pkt, dg: Datagram, decrypted: bool) -> None:
        """Handshake, 0-RTT and 1-RTT packets: one coalesced timeline entry per run of one kind."""
        name = _ENCRYPTED_NAMES[kind]
        tl = conn.state.timeline
        last = tl[-1] if tl else None
        if (last is not None and last.name == name and last.from_client == from_client
                and last.decrypted == decrypted):
            last.count += 1
            last.length += pkt.length
            return
        conn.add_entry(TimelineEntry(from_client, dg.ts, dg.frame, HANDSHAKE if kind == "handshake" else 23, None,
                                name, True, decrypted, length=pkt.length, offset=pkt.offset))

    @staticmethod
    def _connection_close(conn: TlsConnection, from_client: bool, close: tuple, dg: Datagram, kind: str,
                          decrypted: bool) -> None:
        code, frame_type, reason = close
        who = "client" if from_client else "server"
        quic = conn.state.quic
        if quic.get("close") is None:
            quic["close"] = {"from": who, "error_code": code, "application": frame_type is None,
                             "reason": reason or None, "frame": dg.frame}
        if CRYPTO_ERROR_BASE <= code < CRYPTO_ERROR_BASE + 0x100 and frame_type is not None:
            encrypted = kind != "initial"
            alert = Alert(from_client, 2, code - CRYPTO_ERROR_BASE, encrypted, decrypted, dg.ts, dg.frame)
            conn.state.alerts.append(alert)
            conn.add_entry(TimelineEntry(from_client, dg.ts, dg.frame, ALERT, None, "Alert", encrypted, decrypted, 2,
                                    message=alert))
        elif frame_type is None:        # 0x1d: the application closed (HTTP/3 H3_NO_ERROR = 0x100, ...)
            conn.finding(Severity.INFO, "quic_application_close",
                         f"{who} closed the connection (application error 0x{code:x}"
                         + (f": {reason}" if reason else "") + ")")
        elif code == 0:
            conn.finding(Severity.INFO, "quic_connection_close",
                         f"{who} closed the connection (NO_ERROR" + (f": {reason})" if reason else ")"))
        else:
            conn.finding(Severity.MEDIUM, "quic_connection_close",
                         f"{who} closed the connection: transport error 0x{code:x}"
                         + (f" ({reason})" if reason else ""))

    def closing(self, flow: _QuicFlow) -> None:
        for (level, from_client), stream in flow.crypto.items():
            if stream.dropped or stream.mismatches:
                flow.conn.finding(Severity.MEDIUM, "quic_crypto_stream",
                                  f"{'client' if from_client else 'server'} {level} CRYPTO stream: "
                                  f"{stream.dropped} frame(s) dropped, {stream.mismatches} overlap mismatch(es)")
