"""Handshake message bodies decoded into typed values (RFC 8446, 5246, 4492/8422, 6066, 8879).

``decode_handshake`` gets one complete message body (defragmented by
``tls.handshake``) and the explicit context it depends on: the direction, the
negotiated version (TLS 1.3 changes Certificate, CertificateRequest and
NewSessionTicket) and the key exchange of the negotiated suite (which decides
the ServerKeyExchange and ClientKeyExchange bodies). Only ``DecodeError`` ever
leaves this module; a malformed extension body is kept inside its Extension.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Callable, ClassVar

from tlsscope.codec import DecodeError, Reader
from tlsscope.tls.context import DecodeContext, has_signature_algorithm, is_tls13
from tlsscope.tls.extensions import (
    Extension, SelectedVersion, decode_extension_block, decode_extensions, read_distinguished_names,
)
from tlsscope.tls.keyexchange import (
    ClientKeyExchange, ServerDHParams, ServerECDHParams, ServerKeyExchange, ServerRSAParams, ServerSRPParams,
    decode_client_key_exchange, decode_server_key_exchange,
)
from tlsscope.tls.x509info import DistinguishedName, OCSPSummary, summarize_ocsp

__all__ = [
    "HANDSHAKE_DECODERS", "HELLO_RETRY_REQUEST_RANDOM", "Certificate", "CertificateEntry",
    "CertificateRequest", "CertificateStatus", "CertificateVerify", "ClientHello", "ClientKeyExchange",
    "CompressedCertificate", "DecodeContext", "DistinguishedName", "DraftHelloRetryRequest",
    "EncryptedExtensions", "EndOfEarlyData", "Finished", "HandshakeMessage", "HelloRequest", "HelloVerifyRequest", "KeyUpdate", "MessageHash",
    "NewSessionTicket", "NextProtocol", "SSLv2ClientHello", "ServerDHParams", "ServerECDHParams",
    "ServerHello", "ServerHelloDone", "ServerKeyExchange", "ServerRSAParams", "ServerSRPParams",
    "UnknownHandshake", "decode_handshake", "decode_sslv2_client_hello", "is_tls13",
]

# RFC 8446 §4.1.3: SHA-256("HelloRetryRequest") as ServerHello.random marks a HelloRetryRequest.
HELLO_RETRY_REQUEST_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()
_DOWNGRADE_TLS12 = b"DOWNGRD\x01"
_DOWNGRADE_TLS11 = b"DOWNGRD\x00"


class _HasExtensions:
    __slots__ = ()

    def get_extension(self, ext_type: int) -> Extension | None:
        """The first extension of this type (duplicates are a finding, not our concern here)."""
        for ext in self.extensions:  # type: ignore[attr-defined]
            if ext.type == ext_type:
                return ext
        return None


# -- messages --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HelloRequest:
    msg_type: ClassVar[int] = 0


@dataclass(frozen=True, slots=True)
class ClientHello(_HasExtensions):
    msg_type: ClassVar[int] = 1
    legacy_version: int
    random: bytes
    legacy_session_id: bytes
    cipher_suites: tuple[int, ...]
    legacy_compression_methods: tuple[int, ...]
    extensions: tuple[Extension, ...]
    has_extensions_block: bool         # False for SSL 3.0-style hellos that end after compression


@dataclass(frozen=True, slots=True)
class ServerHello(_HasExtensions):
    msg_type: ClassVar[int] = 2
    legacy_version: int
    random: bytes
    legacy_session_id: bytes
    cipher_suite: int
    legacy_compression_method: int
    extensions: tuple[Extension, ...]
    has_extensions_block: bool

    @property
    def is_hello_retry_request(self) -> bool:
        return self.random == HELLO_RETRY_REQUEST_RANDOM

    @property
    def downgrade_sentinel(self) -> str | None:
        """RFC 8446 §4.1.3: a TLS 1.3 server negotiating less marks the random's last 8 bytes."""
        tail = self.random[-8:]
        if tail == _DOWNGRADE_TLS12:
            return "tls12"
        if tail == _DOWNGRADE_TLS11:
            return "tls11"
        return None

    @property
    def selected_version(self) -> int:
        ext = self.get_extension(43)
        if ext is not None and isinstance(ext.value, SelectedVersion):
            return ext.value.selected_version
        return self.legacy_version


@dataclass(frozen=True, slots=True)
class DraftHelloRetryRequest(_HasExtensions):
    """hello_retry_request (6) of TLS 1.3 drafts before -22 (later drafts use ServerHello)."""
    msg_type: ClassVar[int] = 6
    server_version: int
    cipher_suite: int | None           # present from draft -19 on
    extensions: tuple[Extension, ...]


@dataclass(frozen=True, slots=True)
class HelloVerifyRequest:
    """DTLS (RFC 6347 §4.2.1)."""
    msg_type: ClassVar[int] = 3
    server_version: int
    cookie: bytes


@dataclass(frozen=True, slots=True)
class NewSessionTicket(_HasExtensions):
    """RFC 5077 form (TLS <= 1.2) or RFC 8446 form (the three TLS 1.3 fields are then set)."""
    msg_type: ClassVar[int] = 4
    ticket_lifetime_hint: int          # ticket_lifetime in RFC 8446
    ticket: bytes
    ticket_age_add: int | None = None
    ticket_nonce: bytes | None = None
    extensions: tuple[Extension, ...] = ()

    @property
    def is_tls13(self) -> bool:
        return self.ticket_age_add is not None


@dataclass(frozen=True, slots=True)
class EndOfEarlyData:
    msg_type: ClassVar[int] = 5


@dataclass(frozen=True, slots=True)
class EncryptedExtensions(_HasExtensions):
    msg_type: ClassVar[int] = 8
    extensions: tuple[Extension, ...]


@dataclass(frozen=True, slots=True)
class CertificateEntry(_HasExtensions):
    cert_data: bytes
    extensions: tuple[Extension, ...] = ()


@dataclass(frozen=True, slots=True)
class Certificate:
    msg_type: ClassVar[int] = 11
    certificate_request_context: bytes | None   # TLS 1.3 only
    certificate_list: tuple[CertificateEntry, ...]


@dataclass(frozen=True, slots=True)
class CertificateRequest(_HasExtensions):
    """TLS <= 1.2 form (types, algorithms, authorities) or TLS 1.3 form (context, extensions)."""
    msg_type: ClassVar[int] = 13
    certificate_types: tuple[int, ...] = ()
    supported_signature_algorithms: tuple[int, ...] | None = None   # absent before TLS 1.2
    certificate_authorities: tuple[DistinguishedName, ...] = ()
    certificate_request_context: bytes | None = None                 # TLS 1.3 only
    extensions: tuple[Extension, ...] = ()


@dataclass(frozen=True, slots=True)
class ServerHelloDone:
    msg_type: ClassVar[int] = 14


@dataclass(frozen=True, slots=True)
class CertificateVerify:
    msg_type: ClassVar[int] = 15
    algorithm: int | None              # None before TLS 1.2
    signature: bytes


@dataclass(frozen=True, slots=True)
class Finished:
    msg_type: ClassVar[int] = 20
    verify_data: bytes


@dataclass(frozen=True, slots=True)
class CertificateStatus:
    msg_type: ClassVar[int] = 22
    status_type: int                   # 1 ocsp, 2 ocsp_multi
    response: bytes                    # the OCSPResponse DER (ocsp) / raw body after status_type
    ocsp: OCSPSummary | None           # summary of the (first) OCSP response
    ocsp_response_list: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class KeyUpdate:
    msg_type: ClassVar[int] = 24
    request_update: int


@dataclass(frozen=True, slots=True)
class CompressedCertificate:
    msg_type: ClassVar[int] = 25
    algorithm: int
    uncompressed_length: int
    compressed_certificate_message: bytes


@dataclass(frozen=True, slots=True)
class NextProtocol:
    """NPN (draft-agl-tls-nextprotoneg), sent encrypted after ChangeCipherSpec."""
    msg_type: ClassVar[int] = 67
    selected_protocol: bytes
    padding: bytes


@dataclass(frozen=True, slots=True)
class MessageHash:
    """RFC 8446 §4.4.1: synthetic transcript message replacing ClientHello1 after HRR."""
    msg_type: ClassVar[int] = 254
    hash: bytes


@dataclass(frozen=True, slots=True)
class UnknownHandshake:
    msg_type: int
    body: bytes


@dataclass(frozen=True, slots=True)
class SSLv2ClientHello:
    msg_type: ClassVar[int] = 1
    version: int
    cipher_specs: tuple[int, ...]      # 3-byte cipher kinds; TLS suites appear as 0x00XXYY
    session_id: bytes
    challenge: bytes


HandshakeMessage = (HelloRequest | ClientHello | ServerHello | HelloVerifyRequest | DraftHelloRetryRequest
                    | NewSessionTicket
                    | EndOfEarlyData | EncryptedExtensions | Certificate | ServerKeyExchange
                    | CertificateRequest | ServerHelloDone | CertificateVerify | ClientKeyExchange
                    | Finished | CertificateStatus | KeyUpdate | CompressedCertificate | NextProtocol
                    | MessageHash | UnknownHandshake)


# -- decoders --------------------------------------------------------------------------

def _one_of(r: Reader, forms: list[tuple[str, Callable[[Reader], object]]]):
    """Try message forms in order (used only when the version is not known yet)."""
    first: DecodeError | None = None
    for name, fn in forms:
        c = r.child(name)
        try:
            value = fn(c)
            c.expect_end()
        except DecodeError as e:
            first = first or e
            continue
        r.advance_to(c)
        return value
    raise first if first is not None else r.error("no message form given")


def _empty_body(cls):
    def decode(r: Reader, ctx: DecodeContext):
        r.expect_end(cls.__name__)
        return cls()
    return decode


def _client_hello(r: Reader, ctx: DecodeContext) -> ClientHello:
    legacy_version = r.u16("legacy_version")
    random = r.opaque(32, "random")
    session_id = r.vector_bytes(1, "legacy_session_id")
    cipher_suites = r.u16_list(2, "cipher_suites")
    compression = r.u8_list(1, "legacy_compression_methods")
    has_ext = not r.at_end()
    extensions = decode_extensions(r, "client_hello") if has_ext else ()
    r.expect_end("ClientHello")
    return ClientHello(legacy_version, random, session_id, cipher_suites, compression, extensions, has_ext)


# Cipher suite lists repeat across connections (a capture has a few client configurations).
_SUITE_LISTS: dict[bytes, tuple[int, ...]] = {}


def _u16_tuple(b: bytes) -> tuple[int, ...]:
    t = _SUITE_LISTS.get(b)
    if t is None:
        t = struct.unpack(f">{len(b) >> 1}H", b)
        if len(b) <= 1024:
            if len(_SUITE_LISTS) >= 1024:
                _SUITE_LISTS.clear()
            _SUITE_LISTS[b] = t
    return t


def _hello_extensions(b: bytes, e: int, context: str, path: str, offset: int):
    """A hello's optional extension block from ``b[e]`` to the end: (extensions, has_block),
    or None when its length does not end exactly at the end of the message."""
    n = len(b)
    if e == n:
        return (), False
    if e + 2 > n or e + 2 + ((b[e] << 8) | b[e + 1]) != n:
        return None
    return decode_extension_block(b[e + 2:], context, path, offset + e + 2), True


def _client_hello_fast(b: bytes, offset: int) -> ClientHello | None:
    """_client_hello over plain bytes; None when the framing is off anywhere (the Reader path
    then raises the precise DecodeError). The extensions' own errors are the same in both."""
    n = len(b)
    if n < 35:
        return None
    p = 35 + b[34]                                  # after legacy_session_id
    if p + 2 > n:
        return None
    q = p + 2 + ((b[p] << 8) | b[p + 1])            # after cipher_suites
    if q >= n or (q - p) & 1:
        return None
    e = q + 1 + b[q]                                # after legacy_compression_methods
    if e > n:
        return None
    tail = _hello_extensions(b, e, "client_hello", "ClientHello.extensions", offset)
    if tail is None:
        return None
    return ClientHello((b[0] << 8) | b[1], b[2:34], b[35:p], _u16_tuple(b[p + 2:q]), tuple(b[q + 1:e]), *tail)


def _server_hello_fast(b: bytes, offset: int) -> ServerHello | None:
    """_server_hello over plain bytes (as _client_hello_fast); not for early TLS 1.3 drafts."""
    n = len(b)
    if n < 35:
        return None
    version = (b[0] << 8) | b[1]
    if _is_early_tls13_draft(version):
        return None
    p = 35 + b[34]                                  # after legacy_session_id
    if p + 3 > n:
        return None
    random = b[2:34]
    context = "hello_retry_request" if random == HELLO_RETRY_REQUEST_RANDOM else "server_hello"
    tail = _hello_extensions(b, p + 3, context, "ServerHello.extensions", offset)
    if tail is None:
        return None
    return ServerHello(version, random, b[35:p], (b[p] << 8) | b[p + 1], b[p + 2], *tail)


def _is_early_tls13_draft(version: int) -> bool:
    """TLS 1.3 drafts before -22 had a ServerHello without session id and compression.

    The earliest ones (e.g. draft-14) sent 0x0304 itself, which RFC 8446 servers never
    put in legacy_version (always 0x0303), so that value marks the draft layout too.
    """
    return version == 0x0304 or (version >> 8 == 0x7F and (version & 0xFF) < 22)


def _server_hello(r: Reader, ctx: DecodeContext) -> ServerHello:
    legacy_version = r.u16("legacy_version")
    random = r.opaque(32, "random")
    if _is_early_tls13_draft(legacy_version):
        session_id, cipher_suite, compression = b"", r.u16("cipher_suite"), 0
    else:
        session_id = r.vector_bytes(1, "legacy_session_id")
        cipher_suite = r.u16("cipher_suite")
        compression = r.u8("legacy_compression_method")
    has_ext = not r.at_end()
    context = "hello_retry_request" if random == HELLO_RETRY_REQUEST_RANDOM else "server_hello"
    extensions = decode_extensions(r, context) if has_ext else ()
    r.expect_end("ServerHello")
    return ServerHello(legacy_version, random, session_id, cipher_suite, compression, extensions, has_ext)


def _hello_verify_request(r: Reader, ctx: DecodeContext) -> HelloVerifyRequest:
    return HelloVerifyRequest(r.u16("server_version"), r.vector_bytes(1, "cookie"))


def _draft_hello_retry_request(r: Reader, ctx: DecodeContext) -> DraftHelloRetryRequest:
    version = r.u16("server_version")
    draft = version & 0xFF if version >> 8 == 0x7F else None
    cipher_suite = r.u16("cipher_suite") if draft is None or draft >= 19 else None
    return DraftHelloRetryRequest(version, cipher_suite, decode_extensions(r, "hello_retry_request"))


def _nst12(r: Reader) -> NewSessionTicket:
    return NewSessionTicket(r.u32("ticket_lifetime_hint"), r.vector_bytes(2, "ticket"))


def _nst13(r: Reader) -> NewSessionTicket:
    lifetime = r.u32("ticket_lifetime")
    age_add = r.u32("ticket_age_add")
    nonce = r.vector_bytes(1, "ticket_nonce")
    ticket = r.vector_bytes(2, "ticket", minimum=1)
    extensions = decode_extensions(r, "new_session_ticket")
    return NewSessionTicket(lifetime, ticket, age_add, nonce, extensions)


def _new_session_ticket(r: Reader, ctx: DecodeContext) -> NewSessionTicket:
    if ctx.version is None:
        return _one_of(r, [("tls12", _nst12), ("tls13", _nst13)])
    return _nst13(r) if is_tls13(ctx.version) else _nst12(r)


def _encrypted_extensions(r: Reader, ctx: DecodeContext) -> EncryptedExtensions:
    return EncryptedExtensions(decode_extensions(r, "encrypted_extensions"))


def _certificate12(r: Reader) -> Certificate:
    lst = r.vector(3, "certificate_list")
    certs = []
    while not lst.at_end():
        certs.append(CertificateEntry(lst.vector_bytes(3, "ASN.1Cert", minimum=1)))
    return Certificate(None, tuple(certs))


def _certificate13(r: Reader) -> Certificate:
    context = r.vector_bytes(1, "certificate_request_context")
    lst = r.vector(3, "certificate_list")
    entries = []
    while not lst.at_end():
        cert_data = lst.vector_bytes(3, "cert_data", minimum=1)
        entries.append(CertificateEntry(cert_data, decode_extensions(lst, "certificate")))
    return Certificate(context, tuple(entries))


def _certificate(r: Reader, ctx: DecodeContext) -> Certificate:
    if ctx.version is None:
        return _one_of(r, [("tls12", _certificate12), ("tls13", _certificate13)])
    return _certificate13(r) if is_tls13(ctx.version) else _certificate12(r)


def _certificate_request12(r: Reader, version: int | None) -> CertificateRequest:
    types = r.u8_list(1, "certificate_types")
    algs = r.u16_list(2, "supported_signature_algorithms") if has_signature_algorithm(version) else None
    return CertificateRequest(types, algs, read_distinguished_names(r, "certificate_authorities"))


def _certificate_request13(r: Reader) -> CertificateRequest:
    context = r.vector_bytes(1, "certificate_request_context")
    return CertificateRequest(certificate_request_context=context,
                              extensions=decode_extensions(r, "certificate_request"))


def _certificate_request(r: Reader, ctx: DecodeContext) -> CertificateRequest:
    if is_tls13(ctx.version):
        return _certificate_request13(r)
    if ctx.version is None:
        return _one_of(r, [("tls12", lambda c: _certificate_request12(c, 0x0303)),
                           ("legacy", lambda c: _certificate_request12(c, 0x0301))])
    return _certificate_request12(r, ctx.version)


def _cv12(r: Reader) -> CertificateVerify:
    return CertificateVerify(r.u16("algorithm"), r.vector_bytes(2, "signature"))


def _cv_legacy(r: Reader) -> CertificateVerify:
    return CertificateVerify(None, r.vector_bytes(2, "signature"))


def _certificate_verify(r: Reader, ctx: DecodeContext) -> CertificateVerify:
    if ctx.version is None:
        return _one_of(r, [("tls12", _cv12), ("legacy", _cv_legacy)])
    return _cv12(r) if has_signature_algorithm(ctx.version) else _cv_legacy(r)


def _finished(r: Reader, ctx: DecodeContext) -> Finished:
    return Finished(r.rest())


def _certificate_status(r: Reader, ctx: DecodeContext) -> CertificateStatus:
    status_type = r.u8("status_type")
    if status_type == 1:
        der = r.vector_bytes(3, "response", minimum=1)
        return CertificateStatus(1, der, summarize_ocsp(der), (der,))
    if status_type == 2:                          # RFC 6961 ocsp_multi: one (possibly empty) per cert
        start = r.child("ocsp_response_list")
        lst = r.vector(3, "ocsp_response_list")
        items = []
        while not lst.at_end():
            items.append(lst.vector_bytes(3, "OCSPResponse"))
        raw = start.opaque(r.offset - start.offset)
        first = next((d for d in items if d), None)
        return CertificateStatus(2, raw, summarize_ocsp(first) if first else None, tuple(items))
    return CertificateStatus(status_type, r.rest(), None)


def _key_update(r: Reader, ctx: DecodeContext) -> KeyUpdate:
    return KeyUpdate(r.u8("request_update"))


def _compressed_certificate(r: Reader, ctx: DecodeContext) -> CompressedCertificate:
    return CompressedCertificate(r.u16("algorithm"), r.u24("uncompressed_length"),
                                 r.vector_bytes(3, "compressed_certificate_message", minimum=1))


def _next_protocol(r: Reader, ctx: DecodeContext) -> NextProtocol:
    return NextProtocol(r.vector_bytes(1, "selected_protocol"), r.vector_bytes(1, "padding"))


def _message_hash(r: Reader, ctx: DecodeContext) -> MessageHash:
    return MessageHash(r.rest())


HANDSHAKE_DECODERS: dict[int, Callable[[Reader, DecodeContext], HandshakeMessage]] = {
    HelloRequest.msg_type: _empty_body(HelloRequest),
    ClientHello.msg_type: _client_hello,
    ServerHello.msg_type: _server_hello,
    HelloVerifyRequest.msg_type: _hello_verify_request,
    DraftHelloRetryRequest.msg_type: _draft_hello_retry_request,
    NewSessionTicket.msg_type: _new_session_ticket,
    EndOfEarlyData.msg_type: _empty_body(EndOfEarlyData),
    EncryptedExtensions.msg_type: _encrypted_extensions,
    Certificate.msg_type: _certificate,
    ServerKeyExchange.msg_type: decode_server_key_exchange,
    CertificateRequest.msg_type: _certificate_request,
    ServerHelloDone.msg_type: _empty_body(ServerHelloDone),
    CertificateVerify.msg_type: _certificate_verify,
    ClientKeyExchange.msg_type: decode_client_key_exchange,
    Finished.msg_type: _finished,
    CertificateStatus.msg_type: _certificate_status,
    KeyUpdate.msg_type: _key_update,
    CompressedCertificate.msg_type: _compressed_certificate,
    NextProtocol.msg_type: _next_protocol,
    MessageHash.msg_type: _message_hash,
}

_NAMES = {
    0: "HelloRequest", 1: "ClientHello", 2: "ServerHello", 3: "HelloVerifyRequest", 4: "NewSessionTicket",
    6: "DraftHelloRetryRequest",
    5: "EndOfEarlyData", 8: "EncryptedExtensions", 11: "Certificate", 12: "ServerKeyExchange",
    13: "CertificateRequest", 14: "ServerHelloDone", 15: "CertificateVerify", 16: "ClientKeyExchange",
    20: "Finished", 22: "CertificateStatus", 24: "KeyUpdate", 25: "CompressedCertificate",
    67: "NextProtocol", 254: "MessageHash",
}


def decode_handshake(msg_type: int, body: bytes, ctx: DecodeContext, offset: int = 0) -> HandshakeMessage:
    """Decode one complete handshake message body (without its 4-byte header).

    ``offset`` is the absolute position of ``body[0]`` used in error offsets.
    Unknown types give ``UnknownHandshake``; anything malformed, including
    trailing bytes, raises ``DecodeError``.
    """
    if body.__class__ is bytes and (msg_type == 1 or msg_type == 2):
        # every connection has both hellos: read well-formed ones straight from the bytes
        msg = _client_hello_fast(body, offset) if msg_type == 1 else _server_hello_fast(body, offset)
        if msg is not None:
            return msg
    decoder = HANDSHAKE_DECODERS.get(msg_type)
    if decoder is None:
        return UnknownHandshake(msg_type, bytes(body))
    r = Reader(body, _NAMES[msg_type], offset)
    msg = decoder(r, ctx)
    r.expect_end(_NAMES[msg_type])
    return msg


def decode_sslv2_client_hello(data: bytes, offset: int = 0) -> SSLv2ClientHello:
    """The SSLv2-compatible CLIENT-HELLO after its record header and msg_type byte."""
    r = Reader(data, "SSLv2ClientHello", offset)
    version = r.u16("version")
    spec_len = r.u16("cipher_spec_length")
    sid_len = r.u16("session_id_length")
    challenge_len = r.u16("challenge_length")
    if spec_len % 3:
        raise r.error(f"cipher_spec_length {spec_len} is not a multiple of 3", "cipher_spec_length")
    specs = r.sub(spec_len, "cipher_specs")
    cipher_specs = tuple(specs.u24() for _ in range(spec_len // 3))
    session_id = r.opaque(sid_len, "session_id")
    challenge = r.opaque(challenge_len, "challenge")
    r.expect_end("SSLv2ClientHello")
    return SSLv2ClientHello(version, cipher_specs, session_id, challenge)
