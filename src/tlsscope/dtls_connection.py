"""DTLS connections of a capture (sans-I/O): records of UDP datagrams into the TLS state machine.

DTLS (RFC 6347, RFC 9147) is TLS over datagrams: each record carries an epoch and a sequence
number, and handshake messages travel in fragments that may come out of order, twice, or not
at all. :mod:`tlsscope.dtls` frames the records and reassembles the handshake; what comes out
goes into a :class:`~tlsscope.connection.TlsConnection`, so messages, certificates (in clear up
to DTLS 1.2), alerts and encryption are decoded, checked and reported exactly as over TCP.

A UDP address pair becomes a DTLS connection when a datagram carrying a ClientHello arrives on
it; its sender is the client. The ClientHello's cookie (RFC 6347 §4.2.1) is taken out before the
TLS decoder reads the message and kept in the connection's ``dtls`` facts, with the
HelloVerifyRequest's. Records protected with DTLS 1.3's unified header go on as application data
with their header, which names the epoch and carries the encrypted sequence number: with keys the
decryptor opens them (:mod:`tlsscope.decrypt.dtls13`), without they are counted.
"""

from __future__ import annotations

from .connection import TlsConnection
from .dtls import (DTLS_OPENSSL_PRE, DtlsHandshakeReassembler, decode_hello_verify_request, looks_like_dtls, split_client_hello_cookie,
                   split_handshake_fragments, split_records)
from .findings import Severity
from .model import Datagram
from .udp_flows import UdpFlow, UdpFlowTable

CHANGE_CIPHER_SPEC, HANDSHAKE, APPLICATION_DATA = 20, 22, 23
CLIENT_HELLO, HELLO_VERIFY_REQUEST = 1, 3


class _DtlsFlow(UdpFlow):
    __slots__ = ("reassembly", "offsets", "info", "told", "hashed", "ccs_seen")

    def __init__(self, fid: int, conn: TlsConnection, key_c: tuple, key_s: tuple, ts: float, frame: int,
                 info: dict):
        super().__init__(fid, conn, key_c, key_s, ts, frame)
        self.reassembly = {True: DtlsHandshakeReassembler(), False: DtlsHandshakeReassembler()}
        self.offsets = {True: 0, False: 0}      # handshake bytes handed on per direction
        self.info = info
        self.told: set = set()                  # notes already turned into findings
        # TLS-framed message handed on -> its DTLS form for the Finished hash (RFC 6347 §4.2.6: the
        # 12-byte header as if unfragmented, the ClientHello with its cookie); taken when read
        self.hashed: dict[tuple[bool, bytes], bytes] = {}
        self.ccs_seen: set[tuple[bool, int, int]] = set()   # pre-RFC DTLS ChangeCipherSpec records


class DtlsFlows(UdpFlowTable):
    """Every DTLS connection of a capture, by UDP address pair (bounded)."""

    def opens(self, dg: Datagram):
        """A datagram with a ClientHello fragment in a plaintext handshake record opens a connection."""
        if not looks_like_dtls(dg.payload):
            return None
        for rec in split_records(dg.payload):
            if rec.error is not None:
                return None
            if rec.content_type == HANDSHAKE and rec.epoch == 0:
                frags, _err = split_handshake_fragments(rec.fragment)
                if any(f.msg_type == CLIENT_HELLO for f in frags):
                    return rec
        return None

    def make(self, fid: int, conn: TlsConnection, key_c: tuple, key_s: tuple, dg: Datagram, first) -> _DtlsFlow:
        info = {"record_version": first.version, "cookies": [], "hello_verify_request": None,
                "records": {"client": 0, "server": 0}, "retransmissions": {"client": 0, "server": 0}}
        conn.state.dtls = info
        flow = _DtlsFlow(fid, conn, key_c, key_s, dg.ts, dg.frame, info)
        conn.unframe_handshake = lambda from_client, plaintext: self._unframe(flow, from_client, plaintext)
        conn.transcript_of = lambda from_client, message: flow.hashed.pop((from_client, message), None)
        return flow

    def read(self, flow: _DtlsFlow, dg: Datagram, from_client: bool) -> None:
        conn = flow.conn
        who = "client" if from_client else "server"
        stats = conn.stats_of(from_client)        # a: the client (it sent the ClientHello)
        stats.bytes += len(dg.payload)
        for rec in split_records(dg.payload):
            if rec.error is not None:
                conn.finding(Severity.MEDIUM, "dtls_record_malformed",
                             f"{who} datagram in frame {dg.frame}, offset {rec.offset}: {rec.error}")
                break
            flow.info["records"][who] += 1
            ct = rec.content_type
            if ct is None:                  # DTLS 1.3 unified header: the content type is encrypted
                conn.record(from_client, APPLICATION_DATA, 0xFEFD, rec.fragment, rec.offset, dg.ts, dg.frame,
                            header=dg.payload[rec.offset:rec.offset + rec.header_len])
            elif ct == HANDSHAKE and rec.epoch == 0:
                stats.records += 1
                self._handshake(flow, rec, dg, from_client)
            else:
                if ct == CHANGE_CIPHER_SPEC and rec.version == DTLS_OPENSSL_PRE:
                    self._pre_rfc_ccs(flow, rec, from_client)
                # the record's own epoch and sequence number: the decryptor's MAC/AEAD input (RFC 6347 §4.1.2.1)
                conn.record(from_client, ct, rec.version, rec.fragment, rec.offset, dg.ts, dg.frame,
                            seq=(rec.epoch << 48) | rec.sequence)

    @staticmethod
    def _pre_rfc_ccs(flow: _DtlsFlow, rec, from_client: bool) -> None:
        """OpenSSL before 0.9.8f gave ChangeCipherSpec a handshake message_seq (Wireshark shows the
        Finished after it one number further on): the next message is expected one later. Once per
        CCS record (a retransmitted one repeats its epoch and sequence)."""
        key = (from_client, rec.epoch, rec.sequence)
        if key in flow.ccs_seen or len(flow.ccs_seen) >= 8:
            return
        flow.ccs_seen.add(key)
        reasm = flow.reassembly[from_client]
        reasm.skip_to(reasm.next_seq + 1)

    def _handshake(self, flow: _DtlsFlow, rec, dg: Datagram, from_client: bool) -> None:
        framed = self._messages(flow, from_client, rec.fragment, f"frame {dg.frame}")
        if framed:
            flow.conn.handshake_data(from_client, framed, flow.offsets[from_client], dg.ts, dg.frame)
            flow.offsets[from_client] += len(framed)

    def _unframe(self, flow: _DtlsFlow, from_client: bool, plaintext: bytes) -> bytes:
        """A decrypted handshake record (Finished, or a renegotiation): its messages TLS-framed."""
        return self._messages(flow, from_client, plaintext, "a decrypted record")

    def _messages(self, flow: _DtlsFlow, from_client: bool, fragment: bytes, where: str) -> bytes:
        """The handshake fragments of one record through the direction's reassembler (clear and
        decrypted records share it: message_seq runs on across epochs); the complete messages,
        TLS-framed, with the ClientHello's cookie taken out."""
        conn = flow.conn
        who = "client" if from_client else "server"
        frags, err = split_handshake_fragments(fragment)
        if err is not None:
            conn.finding(Severity.MEDIUM, "handshake_malformed", f"{who} DTLS handshake record in {where}: {err}")
        reasm = flow.reassembly[from_client]
        out = bytearray()
        for frag in frags:
            for msg_type, seq, body in reasm.add(frag):
                length = len(body).to_bytes(3, "big")
                dtls_form = bytes([msg_type]) + length + seq.to_bytes(2, "big") + b"\0\0\0" + length + body
                if msg_type == CLIENT_HELLO:
                    split = split_client_hello_cookie(body)
                    if split is not None:
                        body, cookie = split
                        flow.info["cookies"].append(cookie.hex())
                elif msg_type == HELLO_VERIFY_REQUEST:
                    try:
                        hvr = decode_hello_verify_request(body)
                        flow.info["hello_verify_request"] = {"server_version": hvr.server_version,
                                                             "cookie": hvr.cookie.hex()}
                    except Exception as e:  # noqa: BLE001 - a malformed message is a finding, never a crash
                        conn.finding(Severity.MEDIUM, "handshake_malformed", f"server HelloVerifyRequest in {where}: {e}")
                message = bytes([msg_type]) + len(body).to_bytes(3, "big") + body
                if conn.decrypting and len(flow.hashed) < 64:
                    flow.hashed[(from_client, message)] = dtls_form
                out += message
        flow.info["retransmissions"][who] = reasm.retransmissions
        for note in reasm.notes:
            if note not in flow.told and len(flow.told) < 20:
                flow.told.add(note)
                conn.finding(Severity.MEDIUM, "dtls_handshake_reassembly", f"{who}: {note}")
        return bytes(out)

    def closing(self, flow: _DtlsFlow) -> None:
        for from_client, reasm in flow.reassembly.items():
            if reasm.dropped:
                flow.conn.finding(Severity.MEDIUM, "dtls_handshake_reassembly",
                                  f"{'client' if from_client else 'server'}: {reasm.dropped} handshake "
                                  "fragment(s) dropped")
