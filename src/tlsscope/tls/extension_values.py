"""Typed values of decoded extension bodies: RFC struct names, RFC field names.

Produced by the decoders in ``tlsscope.tls.extensions`` (which re-exports them);
raw bytes are kept wherever the RFC has opaque data.
"""

from __future__ import annotations

from dataclasses import dataclass

from tlsscope.tls.x509info import DistinguishedName, OCSPSummary

__all__ = [
    "ApplicationSettings",
    "ApplicationSettingsSupport",
    "CertificateAuthoritiesExtension",
    "CertificateCompressionAlgorithms",
    "CertificateStatusExt",
    "CertificateStatusRequest",
    "CertificateStatusRequestItemV2",
    "CertificateStatusRequestListV2",
    "CertificateType",
    "CertificateTypeList",
    "ConnectionId",
    "Cookie",
    "DelegatedCredential",
    "DistinguishedName",
    "DraftVersion",
    "ECHClientHelloInner",
    "ECHClientHelloOuter",
    "ECHClientHelloUnknown",
    "ECHEncryptedExtensions",
    "ECHHelloRetryRequest",
    "ECPointFormatList",
    "EarlyDataIndication",
    "Empty",
    "EncryptedServerName",
    "HeartbeatExtension",
    "HpkeSymmetricCipherSuite",
    "KeyShareClientHello",
    "KeyShareEntry",
    "KeyShareHelloRetryRequest",
    "KeyShareServerHello",
    "MaxFragmentLength",
    "NamedGroupList",
    "OIDFilter",
    "OIDFilterExtension",
    "OfferedPsks",
    "Padding",
    "PreSharedKeySelected",
    "ProtocolNameList",
    "PskIdentity",
    "PskKeyExchangeModes",
    "QuicTransportParameters",
    "RecordSizeLimit",
    "RenegotiationInfo",
    "SelectedVersion",
    "ServerName",
    "ServerNameList",
    "SessionTicket",
    "SignatureSchemeList",
    "SignedCertificateTimestamp",
    "SignedCertificateTimestampList",
    "SupportedVersions",
    "TicketEarlyDataInfo",
    "TokenBindingParameters",
    "TransportParameter",
    "TrustedAuthorities",
    "TrustedAuthority",
    "UseSRTPData",
]


@dataclass(frozen=True, slots=True)
class Empty:
    """An extension whose body is empty by definition (acks, flags)."""


@dataclass(frozen=True, slots=True)
class ServerName:
    name_type: int
    host_name: str          # UTF-8 with backslash escapes for undecodable bytes
    raw: bytes


@dataclass(frozen=True, slots=True)
class ServerNameList:
    server_name_list: tuple[ServerName, ...]


@dataclass(frozen=True, slots=True)
class MaxFragmentLength:
    max_fragment_length: int


@dataclass(frozen=True, slots=True)
class CertificateStatusRequest:
    status_type: int
    responder_id_list: tuple[bytes, ...]      # OCSP (status_type 1) only
    request_extensions: bytes
    request: bytes                             # raw request (all status types)


@dataclass(frozen=True, slots=True)
class CertificateStatusRequestItemV2:
    status_type: int
    request: bytes


@dataclass(frozen=True, slots=True)
class CertificateStatusRequestListV2:
    certificate_status_req_list: tuple[CertificateStatusRequestItemV2, ...]


@dataclass(frozen=True, slots=True)
class CertificateStatusExt:
    """status_request in a TLS 1.3 CertificateEntry: the CertificateStatus body."""
    status_type: int
    response: bytes
    ocsp: OCSPSummary | None


@dataclass(frozen=True, slots=True)
class NamedGroupList:
    named_group_list: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ECPointFormatList:
    ec_point_format_list: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SignatureSchemeList:
    supported_signature_algorithms: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class UseSRTPData:
    srtp_protection_profiles: tuple[int, ...]
    srtp_mki: bytes


@dataclass(frozen=True, slots=True)
class HeartbeatExtension:
    mode: int


@dataclass(frozen=True, slots=True)
class ProtocolNameList:
    protocol_name_list: tuple[bytes, ...]     # bytes: non-ASCII ALPN values exist


@dataclass(frozen=True, slots=True)
class SignedCertificateTimestamp:
    raw: bytes
    sct_version: int
    log_id: bytes | None                      # v1 fields; None for other versions
    timestamp: int | None
    extensions: bytes | None
    signature_algorithm: int | None
    signature: bytes | None


@dataclass(frozen=True, slots=True)
class SignedCertificateTimestampList:
    sct_list: tuple[SignedCertificateTimestamp, ...]


@dataclass(frozen=True, slots=True)
class CertificateTypeList:
    certificate_types: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CertificateType:
    certificate_type: int


@dataclass(frozen=True, slots=True)
class Padding:
    length: int
    all_zero: bool


@dataclass(frozen=True, slots=True)
class CertificateCompressionAlgorithms:
    algorithms: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RecordSizeLimit:
    record_size_limit: int


@dataclass(frozen=True, slots=True)
class SessionTicket:
    ticket: bytes


@dataclass(frozen=True, slots=True)
class PskIdentity:
    identity: bytes
    obfuscated_ticket_age: int


@dataclass(frozen=True, slots=True)
class OfferedPsks:
    identities: tuple[PskIdentity, ...]
    binders: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class PreSharedKeySelected:
    selected_identity: int


@dataclass(frozen=True, slots=True)
class EarlyDataIndication:
    max_early_data_size: int


@dataclass(frozen=True, slots=True)
class SupportedVersions:
    versions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SelectedVersion:
    selected_version: int


@dataclass(frozen=True, slots=True)
class Cookie:
    cookie: bytes


@dataclass(frozen=True, slots=True)
class PskKeyExchangeModes:
    ke_modes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CertificateAuthoritiesExtension:
    authorities: tuple[DistinguishedName, ...]


@dataclass(frozen=True, slots=True)
class OIDFilter:
    certificate_extension_oid: bytes
    dotted: str | None
    certificate_extension_values: bytes


@dataclass(frozen=True, slots=True)
class OIDFilterExtension:
    filters: tuple[OIDFilter, ...]


@dataclass(frozen=True, slots=True)
class KeyShareEntry:
    group: int
    key_exchange: bytes


@dataclass(frozen=True, slots=True)
class KeyShareClientHello:
    client_shares: tuple[KeyShareEntry, ...]


@dataclass(frozen=True, slots=True)
class KeyShareServerHello:
    server_share: KeyShareEntry


@dataclass(frozen=True, slots=True)
class KeyShareHelloRetryRequest:
    selected_group: int


@dataclass(frozen=True, slots=True)
class RenegotiationInfo:
    renegotiated_connection: bytes


@dataclass(frozen=True, slots=True)
class TransportParameter:
    id: int
    value: bytes


@dataclass(frozen=True, slots=True)
class QuicTransportParameters:
    parameters: tuple[TransportParameter, ...]


@dataclass(frozen=True, slots=True)
class HpkeSymmetricCipherSuite:
    kdf_id: int
    aead_id: int


@dataclass(frozen=True, slots=True)
class ECHClientHelloOuter:
    type: int                               # 0 = outer
    cipher_suite: HpkeSymmetricCipherSuite
    config_id: int
    enc: bytes
    payload_length: int


@dataclass(frozen=True, slots=True)
class ECHClientHelloInner:
    type: int                               # 1 = inner


@dataclass(frozen=True, slots=True)
class ECHClientHelloUnknown:
    type: int
    body: bytes


@dataclass(frozen=True, slots=True)
class ECHEncryptedExtensions:
    retry_configs: bytes                    # raw ECHConfigList


@dataclass(frozen=True, slots=True)
class ECHHelloRetryRequest:
    confirmation: bytes


@dataclass(frozen=True, slots=True)
class EncryptedServerName:
    """draft-ietf-tls-esni (0xffce) ClientEncryptedSNI."""
    suite: int
    key_share: KeyShareEntry
    record_digest: bytes
    encrypted_sni: bytes


@dataclass(frozen=True, slots=True)
class ApplicationSettingsSupport:
    supported_protocols: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ApplicationSettings:
    application_settings: bytes


@dataclass(frozen=True, slots=True)
class DelegatedCredential:
    valid_time: int
    dc_cert_verify_algorithm: int
    ASN1_subjectPublicKeyInfo: bytes
    algorithm: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class TokenBindingParameters:
    token_binding_version: int
    key_parameters_list: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ConnectionId:
    cid: bytes


@dataclass(frozen=True, slots=True)
class TicketEarlyDataInfo:
    max_early_data_size: int


@dataclass(frozen=True, slots=True)
class TrustedAuthority:
    identifier_type: int                    # 0 pre_agreed, 1 key_sha1_hash, 2 x509_name, 3 cert_sha1_hash
    identifier: bytes
    distinguished_name: DistinguishedName | None


@dataclass(frozen=True, slots=True)
class TrustedAuthorities:
    trusted_authorities_list: tuple[TrustedAuthority, ...]


@dataclass(frozen=True, slots=True)
class DraftVersion:
    draft_version: int
