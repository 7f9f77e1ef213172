"""ServerKeyExchange and ClientKeyExchange (TLS <= 1.2): bodies chosen by the key exchange.

RFC 5246 §7.4.3/§7.4.7, RFC 4492/8422 (ECDH), RFC 4279 and 5489 (PSK), RFC 5054
(SRP), RFC 2246 (export RSA). The key exchange comes from the negotiated cipher
suite via ``DecodeContext.key_exchange``; an unknown one keeps the raw bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

from tlsscope.codec import Reader
from tlsscope.tls.context import DecodeContext, has_signature_algorithm

__all__ = ["ClientKeyExchange", "ServerDHParams", "ServerECDHParams", "ServerKeyExchange", "ServerRSAParams",
           "ServerSRPParams", "decode_client_key_exchange", "decode_server_key_exchange"]


def _consumed(start: Reader, end: Reader) -> bytes:
    """Bytes between a child taken at ``start`` and the position ``end`` has reached."""
    return start.opaque(end.offset - start.offset)


@dataclass(frozen=True, slots=True)
class ServerECDHParams:
    curve_type: int                    # 3 named_curve; 1 explicit_prime, 2 explicit_char2 (kept raw)
    named_curve: int | None
    explicit_curve: bytes | None       # the raw ECParameters after curve_type for explicit curves
    public: bytes


@dataclass(frozen=True, slots=True)
class ServerDHParams:
    dh_p: bytes
    dh_g: bytes
    dh_Ys: bytes

    @property
    def p_bits(self) -> int:
        return int.from_bytes(self.dh_p, "big").bit_length()


@dataclass(frozen=True, slots=True)
class ServerRSAParams:
    """Export RSA key (RFC 2246 ServerRSAParams)."""
    rsa_modulus: bytes
    rsa_exponent: bytes

    @property
    def modulus_bits(self) -> int:
        return int.from_bytes(self.rsa_modulus, "big").bit_length()


@dataclass(frozen=True, slots=True)
class ServerSRPParams:
    srp_N: bytes
    srp_g: bytes
    srp_s: bytes
    srp_B: bytes


@dataclass(frozen=True, slots=True)
class ServerKeyExchange:
    msg_type: ClassVar[int] = 12
    key_exchange: str | None           # the context it was decoded with
    psk_identity_hint: bytes | None    # PSK suites only
    params: ServerECDHParams | ServerDHParams | ServerRSAParams | ServerSRPParams | None  # None: unknown kx
    params_raw: bytes                  # exact bytes of the params (what the signature covers)
    signature_algorithm: int | None    # None before TLS 1.2 or when unsigned
    signature: bytes | None            # None when the suite sends no signature

    # Shortcuts so callers need not care whether params is ECDH or DH.
    @property
    def named_curve(self) -> int | None:
        return self.params.named_curve if isinstance(self.params, ServerECDHParams) else None

    @property
    def curve_type(self) -> int | None:
        return self.params.curve_type if isinstance(self.params, ServerECDHParams) else None

    @property
    def public(self) -> bytes | None:
        return self.params.public if isinstance(self.params, ServerECDHParams) else None

    @property
    def dh_p(self) -> bytes | None:
        return self.params.dh_p if isinstance(self.params, ServerDHParams) else None

    @property
    def dh_g(self) -> bytes | None:
        return self.params.dh_g if isinstance(self.params, ServerDHParams) else None

    @property
    def dh_Ys(self) -> bytes | None:
        return self.params.dh_Ys if isinstance(self.params, ServerDHParams) else None

    @property
    def p_bits(self) -> int | None:
        return self.params.p_bits if isinstance(self.params, ServerDHParams) else None


@dataclass(frozen=True, slots=True)
class ClientKeyExchange:
    msg_type: ClassVar[int] = 16
    key_exchange: str | None
    exchange_keys: bytes               # the whole body, always
    psk_identity: bytes | None = None
    encrypted_pre_master_secret: bytes | None = None
    dh_Yc: bytes | None = None         # b"" for an implicit (certificate) DH value
    ecdh_Yc: bytes | None = None
    srp_A: bytes | None = None



# -- decoders ----------------------------------------------------------------------------

def _skip_explicit_curve(r: Reader, curve_type: int) -> None:
    """Walk ECParameters of an explicit curve (RFC 4492 §5.4) only to find where they end."""
    if curve_type == 1:                          # explicit_prime
        r.vector_bytes(1, "prime_p")
    else:                                        # explicit_char2
        r.u16("m")
        basis = r.u8("basis")
        if basis == 1:
            r.vector_bytes(1, "k")
        elif basis == 2:
            for k in ("k1", "k2", "k3"):
                r.vector_bytes(1, k)
        else:
            raise r.error(f"unknown ECBasisType {basis}", "basis")
    for name in ("a", "b", "base", "order", "cofactor"):
        r.vector_bytes(1, name)


def _ecdh_params(r: Reader) -> ServerECDHParams:
    curve_type = r.u8("curve_type")
    named_curve = explicit = None
    if curve_type == 3:
        named_curve = r.u16("named_curve")
    elif curve_type in (1, 2):
        start = r.child("explicit_curve")
        _skip_explicit_curve(r, curve_type)
        explicit = _consumed(start, r)
    else:
        raise r.error(f"unknown ECCurveType {curve_type}", "curve_type")
    return ServerECDHParams(curve_type, named_curve, explicit, r.vector_bytes(1, "public", minimum=1))


def _dh_params(r: Reader) -> ServerDHParams:
    return ServerDHParams(r.vector_bytes(2, "dh_p", minimum=1), r.vector_bytes(2, "dh_g", minimum=1),
                          r.vector_bytes(2, "dh_Ys", minimum=1))


def _rsa_params(r: Reader) -> ServerRSAParams:
    return ServerRSAParams(r.vector_bytes(2, "rsa_modulus", minimum=1), r.vector_bytes(2, "rsa_exponent", minimum=1))


def _srp_params(r: Reader) -> ServerSRPParams:
    return ServerSRPParams(r.vector_bytes(2, "srp_N", minimum=1), r.vector_bytes(2, "srp_g", minimum=1),
                           r.vector_bytes(1, "srp_s"), r.vector_bytes(2, "srp_B", minimum=1))


# key exchange -> (has psk_identity_hint, params decoder or None, may be signed)
_SKE_FORMS: dict[str, tuple[bool, Callable[[Reader], object] | None, bool]] = {
    "ECDHE": (False, _ecdh_params, True),
    "ECDH": (False, _ecdh_params, True),         # ECDH_anon: unsigned via signed_kx=False
    "DHE": (False, _dh_params, True),
    "DH": (False, _dh_params, True),             # DH_anon
    "RSA": (False, _rsa_params, True),           # export RSA
    "SRP": (False, _srp_params, True),
    "PSK": (True, None, False),
    "RSA_PSK": (True, None, False),
    "DHE_PSK": (True, _dh_params, False),
    "ECDHE_PSK": (True, _ecdh_params, False),
}


def decode_server_key_exchange(r: Reader, ctx: DecodeContext) -> ServerKeyExchange:
    form = _SKE_FORMS.get(ctx.key_exchange or "")
    if form is None:
        return ServerKeyExchange(ctx.key_exchange, None, None, r.rest(), None, None)
    has_hint, params_fn, signable = form
    start = r.child("params")
    hint = r.vector_bytes(2, "psk_identity_hint") if has_hint else None
    params = params_fn(r) if params_fn is not None else None
    raw = _consumed(start, r)
    sig_alg = signature = None
    if signable and ctx.signed_kx:
        if has_signature_algorithm(ctx.version):
            sig_alg = r.u16("signature_algorithm")
        signature = r.vector_bytes(2, "signature")
    return ServerKeyExchange(ctx.key_exchange, hint, params, raw, sig_alg, signature)  # type: ignore[arg-type]


def decode_client_key_exchange(r: Reader, ctx: DecodeContext) -> ClientKeyExchange:
    kx = ctx.key_exchange
    whole = r.child("exchange_keys")
    fields: dict[str, bytes] = {}
    if kx in ("PSK", "RSA_PSK", "DHE_PSK", "ECDHE_PSK"):
        fields["psk_identity"] = r.vector_bytes(2, "psk_identity")
    if kx in ("RSA", "RSA_PSK"):
        # SSL 3.0, and OpenSSL's DTLS before 0.9.8f (0x0100) which copied it: no length prefix
        if kx == "RSA" and ctx.version in (0x0300, 0x0100):
            fields["encrypted_pre_master_secret"] = r.rest()
        else:
            fields["encrypted_pre_master_secret"] = r.vector_bytes(2, "encrypted_pre_master_secret")
    elif kx in ("DHE", "DH", "DHE_PSK"):
        # An empty body is the implicit form (client certificate holds the DH key).
        fields["dh_Yc"] = b"" if r.at_end() and kx == "DH" else r.vector_bytes(2, "dh_Yc", minimum=1)
    elif kx in ("ECDHE", "ECDH", "ECDHE_PSK"):
        fields["ecdh_Yc"] = b"" if r.at_end() and kx == "ECDH" else r.vector_bytes(1, "ecdh_Yc", minimum=1)
    elif kx == "SRP":
        fields["srp_A"] = r.vector_bytes(2, "srp_A", minimum=1)
    elif kx != "PSK":
        r.rest()
    r.expect_end("ClientKeyExchange")
    return ClientKeyExchange(kx, whole.rest(), **fields)
