"""TLS extensions: the extensions block and every extension body as typed values.

An extension's body depends on the message carrying it (key_share is a list in
ClientHello, one entry in ServerHello, a bare group in HelloRetryRequest), so
decoders are looked up by ``(type, context)`` first and by ``type`` second.
A body that does not parse is kept as raw bytes with the error attached; the
enclosing message still decodes. Only the block framing raises ``DecodeError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tlsscope.codec import DecodeError, Reader
from tlsscope.jsonable import to_jsonable
from tlsscope.tls.extension_values import (  # noqa: F401 - re-exported: the value classes belong to this API
    ApplicationSettings, ApplicationSettingsSupport, CertificateAuthoritiesExtension,
    CertificateCompressionAlgorithms, CertificateStatusExt, CertificateStatusRequest,
    CertificateStatusRequestItemV2, CertificateStatusRequestListV2, CertificateType,
    CertificateTypeList, ConnectionId, Cookie, DelegatedCredential, DistinguishedName, DraftVersion,
    ECHClientHelloInner, ECHClientHelloOuter, ECHClientHelloUnknown, ECHEncryptedExtensions,
    ECHHelloRetryRequest, ECPointFormatList, EarlyDataIndication, Empty, EncryptedServerName,
    HeartbeatExtension, HpkeSymmetricCipherSuite, KeyShareClientHello, KeyShareEntry,
    KeyShareHelloRetryRequest, KeyShareServerHello, MaxFragmentLength, NamedGroupList, OIDFilter,
    OIDFilterExtension, OfferedPsks, Padding, PreSharedKeySelected, ProtocolNameList, PskIdentity,
    PskKeyExchangeModes, QuicTransportParameters, RecordSizeLimit, RenegotiationInfo,
    SelectedVersion, ServerName, ServerNameList, SessionTicket, SignatureSchemeList,
    SignedCertificateTimestamp, SignedCertificateTimestampList, SupportedVersions,
    TicketEarlyDataInfo, TokenBindingParameters, TransportParameter, TrustedAuthorities,
    TrustedAuthority, UseSRTPData,
)
from tlsscope.tls.extension_values import __all__ as _VALUE_TYPES
from tlsscope.tls.x509info import parse_distinguished_name, summarize_ocsp

__all__ = ["CONTEXTS", "EXTENSION_DECODERS", "Extension", "decode_extension", "decode_extensions", "is_grease",
           "read_distinguished_names", *_VALUE_TYPES]

CONTEXTS = frozenset(("client_hello", "server_hello", "hello_retry_request", "encrypted_extensions",
                      "certificate", "certificate_request", "new_session_ticket"))


@dataclass(frozen=True, slots=True)
class Extension:
    type: int
    data: bytes                       # raw extension_data
    value: object | None              # decoded dataclass; None when unknown, GREASE or undecodable
    error: DecodeError | None = None  # why the body did not parse

    def to_json(self) -> dict:
        err = None if self.error is None else {"offset": self.error.offset, "path": self.error.path,
                                               "reason": self.error.reason}
        return {"type": self.type, "data": self.data.hex(), "value": to_jsonable(self.value),
                "error": err}


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE code point (0x0a0a, 0x1a1a, ... 0xfafa)."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


# -- decoders -------------------------------------------------------------------------
# Each takes a Reader over the extension_data; decode_extensions checks the reader
# is exhausted afterwards, so decoders only read what the struct defines.

def _empty(r: Reader) -> Empty:
    return Empty()


def _server_name_ack(r: Reader) -> ServerNameList | Empty:
    # Empty from a server (RFC 6066 §3); a list is accepted for robustness.
    return Empty() if r.at_end() else _server_name_list(r)


def _server_name_list(r: Reader) -> ServerNameList:
    lst = r.vector(2, "server_name_list")
    names = []
    while not lst.at_end():
        name_type = lst.u8("name_type")
        raw = lst.vector_bytes(2, "host_name")   # every defined NameType is opaque<1..2^16-1>
        names.append(ServerName(name_type, raw.decode("utf-8", "backslashreplace"), raw))
    return ServerNameList(tuple(names))


def _max_fragment_length(r: Reader) -> MaxFragmentLength:
    return MaxFragmentLength(r.u8("max_fragment_length"))


def _status_request_ch(r: Reader) -> CertificateStatusRequest:
    status_type = r.u8("status_type")
    if status_type != 1:
        return CertificateStatusRequest(status_type, (), b"", r.rest())
    body = r.child("request")
    ids = body.vector(2, "responder_id_list")
    responder_ids = []
    while not ids.at_end():
        responder_ids.append(ids.vector_bytes(2, "responder_id"))
    request_extensions = body.vector_bytes(2, "request_extensions")
    body.expect_end("OCSPStatusRequest")
    request = r.rest()
    return CertificateStatusRequest(1, tuple(responder_ids), request_extensions, request)


def _status_request_cr(r: Reader) -> Empty | CertificateStatusRequest:
    # RFC 8446 §4.4.2.1: a TLS 1.3 server asks for the client's OCSP status with an empty body.
    return Empty() if r.at_end() else _status_request_ch(r)


def _status_request_certificate(r: Reader) -> CertificateStatusExt:
    status_type = r.u8("status_type")
    response = r.vector_bytes(3, "response") if status_type == 1 else r.rest()
    return CertificateStatusExt(status_type, response, summarize_ocsp(response) if status_type == 1 else None)


def _status_request_sh(r: Reader) -> Empty | CertificateStatusExt:
    # Empty in ServerHello/EncryptedExtensions; a few TLS 1.3 drafts put the status here.
    return Empty() if r.at_end() else _status_request_certificate(r)


def _status_request_v2_ch(r: Reader) -> CertificateStatusRequestListV2:
    lst = r.vector(2, "certificate_status_req_list")
    items = []
    while not lst.at_end():
        items.append(CertificateStatusRequestItemV2(lst.u8("status_type"), lst.vector_bytes(2, "request")))
    return CertificateStatusRequestListV2(tuple(items))


def _supported_groups(r: Reader) -> NamedGroupList:
    return NamedGroupList(r.u16_list(2, "named_group_list"))


def _ec_point_formats(r: Reader) -> ECPointFormatList:
    return ECPointFormatList(r.u8_list(1, "ec_point_format_list"))


def _signature_algorithms(r: Reader) -> SignatureSchemeList:
    return SignatureSchemeList(r.u16_list(2, "supported_signature_algorithms"))


def _use_srtp(r: Reader) -> UseSRTPData:
    return UseSRTPData(r.u16_list(2, "SRTPProtectionProfiles"), r.vector_bytes(1, "srtp_mki"))


def _heartbeat(r: Reader) -> HeartbeatExtension:
    return HeartbeatExtension(r.u8("mode"))


def _protocol_names(r: Reader, field: str) -> tuple[bytes, ...]:
    lst = r.vector(2, field)
    names = []
    while not lst.at_end():
        names.append(lst.vector_bytes(1, "ProtocolName"))
    return tuple(names)


def _alpn(r: Reader) -> ProtocolNameList:
    return ProtocolNameList(_protocol_names(r, "protocol_name_list"))


def _sct_list(r: Reader) -> SignedCertificateTimestampList | Empty:
    if r.at_end():           # ClientHello: the client only signals support
        return Empty()
    lst = r.vector(2, "sct_list")
    scts = []
    while not lst.at_end():
        raw = lst.vector_bytes(2, "SerializedSCT")
        s = Reader(raw, f"{lst.path}.SerializedSCT", lst.offset - len(raw))
        version = s.u8("sct_version")
        if version != 0:     # only v1 (0) is defined; keep others raw
            scts.append(SignedCertificateTimestamp(raw, version, None, None, None, None, None))
            continue
        log_id = s.opaque(32, "id")
        timestamp = s.uint(8, "timestamp")
        exts = s.vector_bytes(2, "extensions")
        alg = s.u16("algorithm")
        sig = s.vector_bytes(2, "signature")
        s.expect_end("SignedCertificateTimestamp")
        scts.append(SignedCertificateTimestamp(raw, version, log_id, timestamp, exts, alg, sig))
    return SignedCertificateTimestampList(tuple(scts))


def _cert_type_list(r: Reader) -> CertificateTypeList:
    return CertificateTypeList(r.u8_list(1, "certificate_types"))


def _cert_type(r: Reader) -> CertificateType:
    return CertificateType(r.u8("certificate_type"))


def _padding(r: Reader) -> Padding:
    pad = r.rest()
    return Padding(len(pad), not any(pad))


def _compress_certificate(r: Reader) -> CertificateCompressionAlgorithms:
    return CertificateCompressionAlgorithms(r.u16_list(1, "algorithms"))


def _record_size_limit(r: Reader) -> RecordSizeLimit:
    return RecordSizeLimit(r.u16("record_size_limit"))


def _session_ticket(r: Reader) -> SessionTicket:
    return SessionTicket(r.rest())


def _pre_shared_key_ch(r: Reader) -> OfferedPsks:
    ids = r.vector(2, "identities")
    identities = []
    while not ids.at_end():
        identities.append(PskIdentity(ids.vector_bytes(2, "identity"), ids.u32("obfuscated_ticket_age")))
    bl = r.vector(2, "binders")
    binders = []
    while not bl.at_end():
        binders.append(bl.vector_bytes(1, "PskBinderEntry"))
    return OfferedPsks(tuple(identities), tuple(binders))


def _pre_shared_key_sh(r: Reader) -> PreSharedKeySelected:
    return PreSharedKeySelected(r.u16("selected_identity"))


def _early_data_nst(r: Reader) -> EarlyDataIndication:
    return EarlyDataIndication(r.u32("max_early_data_size"))


def _supported_versions_ch(r: Reader) -> SupportedVersions:
    return SupportedVersions(r.u16_list(1, "versions"))


def _supported_versions_sh(r: Reader) -> SelectedVersion:
    return SelectedVersion(r.u16("selected_version"))


def _cookie(r: Reader) -> Cookie:
    return Cookie(r.vector_bytes(2, "cookie"))


def _psk_key_exchange_modes(r: Reader) -> PskKeyExchangeModes:
    return PskKeyExchangeModes(r.u8_list(1, "ke_modes"))


def read_distinguished_names(r: Reader, field: str) -> tuple[DistinguishedName, ...]:
    """``DistinguishedName authorities<..2^16-1>``: each a 2-byte-length DER Name."""
    lst = r.vector(2, field)
    names = []
    while not lst.at_end():
        names.append(parse_distinguished_name(lst.vector_bytes(2, "DistinguishedName")))
    return tuple(names)


def _certificate_authorities(r: Reader) -> CertificateAuthoritiesExtension:
    return CertificateAuthoritiesExtension(read_distinguished_names(r, "authorities"))


def _dotted_oid(der: bytes) -> str | None:
    """Dotted form of an OID given with or without its DER tag and length."""
    if len(der) >= 2 and der[0] == 0x06 and der[1] == len(der) - 2:
        der = der[2:]
    if not der or der[-1] & 0x80:
        return None
    arcs, n = [], 0
    for b in der:
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(n)
            n = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def _oid_filters(r: Reader) -> OIDFilterExtension:
    lst = r.vector(2, "filters")
    filters = []
    while not lst.at_end():
        oid = lst.vector_bytes(1, "certificate_extension_oid", minimum=1)
        filters.append(OIDFilter(oid, _dotted_oid(oid), lst.vector_bytes(2, "certificate_extension_values")))
    return OIDFilterExtension(tuple(filters))


def _key_share_entry(r: Reader) -> KeyShareEntry:
    return KeyShareEntry(r.u16("group"), r.vector_bytes(2, "key_exchange"))


def _key_share_ch_fast(b: bytes) -> KeyShareClientHello | None:
    """_key_share_ch over plain bytes (every TLS 1.3 hello has one); None if anything is off."""
    n = len(b)
    if n < 2 or ((b[0] << 8) | b[1]) != n - 2:
        return None
    shares = []
    pos = 2
    while pos < n:
        if n - pos < 4:
            return None
        end = pos + 4 + ((b[pos + 2] << 8) | b[pos + 3])
        if end > n:
            return None
        shares.append(KeyShareEntry((b[pos] << 8) | b[pos + 1], b[pos + 4:end]))
        pos = end
    return KeyShareClientHello(tuple(shares))


def _key_share_sh_fast(b: bytes) -> KeyShareServerHello | None:
    n = len(b)
    if n < 4 or ((b[2] << 8) | b[3]) != n - 4:
        return None
    return KeyShareServerHello(KeyShareEntry((b[0] << 8) | b[1], b[4:]))


def _key_share_ch(r: Reader) -> KeyShareClientHello:
    lst = r.vector(2, "client_shares")
    shares = []
    while not lst.at_end():
        shares.append(_key_share_entry(lst))
    return KeyShareClientHello(tuple(shares))


def _key_share_sh(r: Reader) -> KeyShareServerHello:
    return KeyShareServerHello(_key_share_entry(r))


def _key_share_hrr(r: Reader) -> KeyShareHelloRetryRequest:
    return KeyShareHelloRetryRequest(r.u16("selected_group"))


def _renegotiation_info(r: Reader) -> RenegotiationInfo:
    return RenegotiationInfo(r.vector_bytes(1, "renegotiated_connection"))


def _quic_varint(r: Reader, field: str) -> int:
    first = r.u8(field)
    n = 1 << (first >> 6)
    v = first & 0x3F
    if n > 1:
        v = (v << (8 * (n - 1))) | r.uint(n - 1, field)
    return v


def _quic_transport_parameters(r: Reader) -> QuicTransportParameters:
    params = []
    while not r.at_end():
        pid = _quic_varint(r, "id")
        length = _quic_varint(r, "length")
        params.append(TransportParameter(pid, r.opaque(length, "value")))
    return QuicTransportParameters(tuple(params))


def _ech_ch(r: Reader) -> ECHClientHelloOuter | ECHClientHelloInner | ECHClientHelloUnknown:
    ech_type = r.u8("type")
    if ech_type == 1:
        return ECHClientHelloInner(1)
    if ech_type != 0:
        return ECHClientHelloUnknown(ech_type, r.rest())
    suite = HpkeSymmetricCipherSuite(r.u16("kdf_id"), r.u16("aead_id"))
    config_id = r.u8("config_id")
    enc = r.vector_bytes(2, "enc")
    payload = r.vector_bytes(2, "payload", minimum=1)
    return ECHClientHelloOuter(0, suite, config_id, enc, len(payload))


def _ech_ee(r: Reader) -> ECHEncryptedExtensions:
    return ECHEncryptedExtensions(r.rest())


def _ech_hrr(r: Reader) -> ECHHelloRetryRequest:
    return ECHHelloRetryRequest(r.opaque(8, "confirmation"))


def _esni_ch(r: Reader) -> EncryptedServerName:
    suite = r.u16("suite")
    share = _key_share_entry(r)
    return EncryptedServerName(suite, share, r.vector_bytes(2, "record_digest"), r.vector_bytes(2, "encrypted_sni"))


def _application_settings_ch(r: Reader) -> ApplicationSettingsSupport:
    return ApplicationSettingsSupport(_protocol_names(r, "supported_protocols"))


def _application_settings_ee(r: Reader) -> ApplicationSettings:
    return ApplicationSettings(r.rest())


def _delegated_credential(r: Reader) -> DelegatedCredential:
    return DelegatedCredential(r.u32("valid_time"), r.u16("dc_cert_verify_algorithm"),
                               r.vector_bytes(3, "ASN1_subjectPublicKeyInfo", minimum=1),
                               r.u16("algorithm"), r.vector_bytes(2, "signature", minimum=1))


def _npn_sh(r: Reader) -> ProtocolNameList:
    names = []              # no outer length: the extension_data is the list
    while not r.at_end():
        names.append(r.vector_bytes(1, "ProtocolName"))
    return ProtocolNameList(tuple(names))


def _npn_ch(r: Reader) -> Empty | ProtocolNameList:
    return Empty() if r.at_end() else _npn_sh(r)


def _token_binding(r: Reader) -> TokenBindingParameters:
    return TokenBindingParameters(r.u16("token_binding_version"), r.u8_list(1, "key_parameters_list"))


def _connection_id(r: Reader) -> ConnectionId:
    return ConnectionId(r.vector_bytes(1, "cid"))


def _ticket_early_data_info(r: Reader) -> TicketEarlyDataInfo:
    return TicketEarlyDataInfo(r.u32("max_early_data_size"))


def _trusted_ca_keys(r: Reader) -> TrustedAuthorities:
    lst = r.vector(2, "trusted_authorities_list")
    items = []
    while not lst.at_end():
        t = lst.u8("identifier_type")
        if t == 0:
            items.append(TrustedAuthority(0, b"", None))
        elif t in (1, 3):
            items.append(TrustedAuthority(t, lst.opaque(20, "SHA1Hash"), None))
        elif t == 2:
            der = lst.vector_bytes(2, "DistinguishedName", minimum=1)
            items.append(TrustedAuthority(2, der, parse_distinguished_name(der)))
        else:               # an unknown type has an unknown length: nothing after it can be read
            raise lst.error(f"unknown IdentifierType {t}", "identifier_type")
    return TrustedAuthorities(tuple(items))


def _draft_version(r: Reader) -> DraftVersion:
    return DraftVersion(r.u16("draft_version"))


Decoder = Callable[[Reader], object]

EXTENSION_DECODERS: dict[tuple[int, str] | int, Decoder] = {
    0: _server_name_ack,
    (0, "client_hello"): _server_name_list,
    1: _max_fragment_length,
    3: _trusted_ca_keys,
    4: _empty,                                       # truncated_hmac
    5: _status_request_sh,
    (5, "client_hello"): _status_request_ch,
    (5, "certificate_request"): _status_request_cr,
    (5, "certificate"): _status_request_certificate,
    10: _supported_groups,
    11: _ec_point_formats,
    13: _signature_algorithms,
    14: _use_srtp,
    15: _heartbeat,
    16: _alpn,
    17: _empty,                                      # status_request_v2 ack
    (17, "client_hello"): _status_request_v2_ch,
    18: _sct_list,
    19: _cert_type,
    (19, "client_hello"): _cert_type_list,
    20: _cert_type,
    (20, "client_hello"): _cert_type_list,
    21: _padding,
    22: _empty,                                      # encrypt_then_mac
    23: _empty,                                      # extended_master_secret
    24: _token_binding,
    27: _compress_certificate,
    28: _record_size_limit,
    34: _signature_algorithms,                       # delegated_credentials in CH / CertificateRequest
    (34, "certificate"): _delegated_credential,
    35: _session_ticket,
    41: _pre_shared_key_sh,
    (41, "client_hello"): _pre_shared_key_ch,
    42: _empty,
    (42, "new_session_ticket"): _early_data_nst,
    43: _supported_versions_sh,
    (43, "client_hello"): _supported_versions_ch,
    44: _cookie,
    45: _psk_key_exchange_modes,
    46: _ticket_early_data_info,                     # draft-ietf-tls-tls13-18 and earlier
    47: _certificate_authorities,
    48: _oid_filters,
    49: _empty,                                      # post_handshake_auth
    50: _signature_algorithms,                       # signature_algorithms_cert
    51: _key_share_sh,
    (51, "client_hello"): _key_share_ch,
    (51, "hello_retry_request"): _key_share_hrr,
    53: _connection_id,                              # connection_id (deprecated code point)
    54: _connection_id,
    57: _quic_transport_parameters,
    0x3374: _npn_sh,                                 # next_protocol_negotiation (13172)
    (0x3374, "client_hello"): _npn_ch,
    0x4469: _application_settings_ee,                # application_settings (ALPS, 17513)
    (0x4469, "client_hello"): _application_settings_ch,
    0x44CD: _application_settings_ee,                # application_settings (ALPS, new 17613)
    (0x44CD, "client_hello"): _application_settings_ch,
    0x754F: _empty,                                  # channel_id (30031 old code point)
    0x7550: _empty,                                  # channel_id
    0xFE0D: _ech_ee,                                 # encrypted_client_hello
    (0xFE0D, "client_hello"): _ech_ch,
    (0xFE0D, "hello_retry_request"): _ech_hrr,
    0xFF01: _renegotiation_info,
    0xFF02: _draft_version,                          # draft_version (TLS 1.3 drafts <= 2016)
    0xFFA5: _quic_transport_parameters,              # quic_transport_parameters (draft code point)
    0xFFCE: _esni_ch,                                # encrypted_server_name (ESNI drafts)
}

# Names used only to build error paths ("ClientHello.extensions[3].server_name");
# display names come from tlsscope.registry at the edges.
_PATH_NAMES = {
    0: "server_name", 1: "max_fragment_length", 3: "trusted_ca_keys", 4: "truncated_hmac",
    5: "status_request", 10: "supported_groups", 11: "ec_point_formats", 13: "signature_algorithms",
    14: "use_srtp", 15: "heartbeat", 16: "application_layer_protocol_negotiation",
    17: "status_request_v2", 18: "signed_certificate_timestamp", 19: "client_certificate_type",
    20: "server_certificate_type", 21: "padding", 22: "encrypt_then_mac", 23: "extended_master_secret",
    24: "token_binding", 27: "compress_certificate", 28: "record_size_limit",
    34: "delegated_credentials", 35: "session_ticket", 41: "pre_shared_key", 42: "early_data",
    43: "supported_versions", 44: "cookie", 45: "psk_key_exchange_modes",
    46: "ticket_early_data_info", 47: "certificate_authorities", 48: "oid_filters",
    49: "post_handshake_auth", 50: "signature_algorithms_cert", 51: "key_share", 53: "connection_id",
    54: "connection_id", 57: "quic_transport_parameters", 0x3374: "next_protocol_negotiation",
    0x4469: "application_settings", 0x44CD: "application_settings", 0x754F: "channel_id",
    0x7550: "channel_id", 0xFE0D: "encrypted_client_hello", 0xFF01: "renegotiation_info",
    0xFF02: "draft_version", 0xFFA5: "quic_transport_parameters", 0xFFCE: "encrypted_server_name",
}


def decode_extension(ext_type: int, data: bytes, context: str, path: str = "", base: int = 0) -> Extension:
    """Decode one extension body; a malformed body is recorded in ``Extension.error``."""
    if is_grease(ext_type):
        return Extension(ext_type, data, None)
    decoder = EXTENSION_DECODERS.get((ext_type, context)) or EXTENSION_DECODERS.get(ext_type)
    if decoder is None:
        return Extension(ext_type, data, None)
    r = Reader(data, path, base)
    try:
        value = decoder(r)
        r.expect_end(_PATH_NAMES.get(ext_type, "extension"))
    except DecodeError as e:
        return Extension(ext_type, data, None, e)
    return Extension(ext_type, data, value)


# Most extension bodies repeat across connections (a capture has a few client and server
# configurations), and Extension and its values are frozen: share one decoded Extension per
# (type, context, body). Only clean decodes are kept (an error carries its offset and path);
# bodies that differ per connection (tickets, PSK identities, key shares, cookies, ECH) and
# big bodies are not kept, and the table is emptied when full, so it stays bounded.
_CACHE: dict[tuple[int, str, bytes], Extension] = {}
_BLOCKS: dict[tuple[str, bytes], tuple[Extension, ...]] = {}    # whole blocks of cached extensions
_CACHE_MAX = 4096
_CACHE_BODY_MAX = 1024
VOLATILE_EXTENSION_TYPES = frozenset((35, 41, 44, 51, 0xFE0D, 0xFFCE))


# Per-connection bodies that every TLS 1.3 hello has, read straight from the bytes when well
# formed (the Reader-based decoder gives the errors otherwise).
_FAST_VOLATILE: dict[tuple[int, str], Callable[[bytes], object]] = {
    (51, "client_hello"): _key_share_ch_fast,
    (51, "server_hello"): _key_share_sh_fast,
}


def decode_extensions(r: Reader, context: str) -> tuple[Extension, ...]:
    """Read ``Extension extensions<0..2^16-1>``; only a broken block framing raises."""
    block = r.vector(2, "extensions")
    start = block.offset            # before rest() moves it to the end
    return decode_extension_block(block.rest(), context, block.path, start)


def decode_extension_block(raw: bytes, context: str, path: str, start: int) -> tuple[Extension, ...]:
    """The extensions in ``raw`` (a block's body, without its length; ``path`` and ``start``
    name it and give its absolute offset in errors); only a broken framing raises."""
    # a whole block with nothing per-connection in it (a TLS 1.2 ServerHello's, say) recurs as is
    whole = _BLOCKS.get((context, raw))
    if whole is not None:
        return whole
    # Walk the framing over plain bytes; a broken framing is read again through a Reader
    # (below), which raises the DecodeError with its exact offset and path.
    out = []
    cache = _CACHE
    shareable = len(raw) <= _CACHE_BODY_MAX
    pos, end = 0, len(raw)
    while pos < end:
        if end - pos < 4:
            return _decode_extensions_checked(Reader(raw, path, start), context)
        ext_type = (raw[pos] << 8) | raw[pos + 1]
        n = (raw[pos + 2] << 8) | raw[pos + 3]
        pos += 4
        if n > end - pos:
            return _decode_extensions_checked(Reader(raw, path, start), context)
        data = raw[pos:pos + n]
        key = (ext_type, context, data)
        ext = cache.get(key)
        if ext is None:
            fast = _FAST_VOLATILE.get((ext_type, context))
            value = fast(data) if fast is not None else None
            if value is not None:
                ext = Extension(ext_type, data, value)
            else:
                name = _PATH_NAMES.get(ext_type, f"0x{ext_type:04x}")
                ext = decode_extension(ext_type, data, context, f"{path}[{len(out)}].{name}", start + pos)
            # an empty body (a session_ticket without ticket) is the same for everyone
            if ext.error is None and (ext_type not in VOLATILE_EXTENSION_TYPES or not n) and n <= _CACHE_BODY_MAX:
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                cache[key] = ext
            else:
                shareable = False
        out.append(ext)
        pos += n
    exts = tuple(out)
    if shareable:
        if len(_BLOCKS) >= _CACHE_MAX:
            _BLOCKS.clear()
        _BLOCKS[(context, raw)] = exts
    return exts


def _decode_extensions_checked(block: Reader, context: str) -> tuple[Extension, ...]:
    out = []
    while not block.at_end():
        ext_type = block.u16("extension_type")
        data_r = block.vector(2, "extension_data")
        base = data_r.offset
        name = _PATH_NAMES.get(ext_type, f"0x{ext_type:04x}")
        out.append(decode_extension(ext_type, data_r.rest(), context, f"{block.path}[{len(out)}].{name}", base))
    return tuple(out)
