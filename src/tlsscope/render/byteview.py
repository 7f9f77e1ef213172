"""Byte view: the hex of a handshake message, alert or record with every field labelled.

Like Wireshark's packet-bytes pane, but each field's bytes carry their RFC name.
The spans are found by re-reading the raw bytes with :class:`tlsscope.codec.Reader`
in a small walk that records where each field starts and ends (the decoders in
``tls/`` build values and do not keep positions). Leaf spans cover the bytes in
order, without gaps or overlap: whatever the walk does not understand, or where
the bytes are malformed, becomes one ``undecoded`` span with the reason.

Rendering: :func:`byteview_html` (spans with ``title=`` labels plus a legend, for
notebooks) and :func:`byteview_rich` (coloured hex plus legend, for the terminal).
"""

from __future__ import annotations

import html
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

from ..codec import DecodeError, Reader
from ..registry import (alert_description_name, alert_level_name, cert_compression_algorithm_name,
                        certificate_status_type_name, cipher_suite_info, cipher_suite_name,
                        client_certificate_type_name, compression_method_name, content_type_name,
                        ec_point_format_name, extension_name, group_name, handshake_type_name,
                        name_type_name, psk_key_exchange_mode_name, signature_scheme_name, version_name)

__all__ = ["ByteView", "FieldSpan", "alert_view", "byteview_html", "byteview_rich", "entry_view",
           "handshake_view", "record_view"]

TLS13 = 0x0304
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


@dataclass(frozen=True, slots=True)
class FieldSpan:
    """Bytes ``data[start:end]`` are the field ``path``; ``group`` is its top-level field."""

    start: int
    end: int
    path: str          # e.g. "extensions[0] server_name.server_name_list[0].host_name"
    value: str         # readable value, e.g. "0x0303 TLS 1.2"
    group: str         # e.g. "extensions[0] server_name" (colour and legend key)

    @property
    def label(self) -> str:
        return f"{self.path} = {self.value}" if self.value else self.path


@dataclass(frozen=True, slots=True)
class ByteView:
    title: str
    data: bytes
    fields: tuple[FieldSpan, ...]     # leaves in byte order; they tile ``data`` exactly
    groups: tuple[FieldSpan, ...]     # containers (extensions[i] ..., certificate_list[i], ...)
    error: str | None = None          # why part of the bytes stayed undecoded

    def legend(self) -> list[tuple[str, int, int, str]]:
        """(group, start, end, value) per top-level field, in byte order.

        The value of a group of several leaves joins its items' values (lengths and
        extension types left out), e.g. the cipher suite names of ``cipher_suites``.
        """
        out: list[tuple[str, int, int, str]] = []
        i = 0
        fields = self.fields
        while i < len(fields):
            j = i
            while j < len(fields) and fields[j].group == fields[i].group:
                j += 1
            leaves = fields[i:j]
            if len(leaves) == 1:
                value = leaves[0].value
            else:
                value = ", ".join(f.value for f in leaves if f.value and not f.path.endswith(
                    (".length", ".extension_type", ".msg_type")))
            if len(value) > 160:
                value = value[:159] + "…"
            out.append((fields[i].group, leaves[0].start, leaves[-1].end, value))
            i = j
        return out


# -- formatting helpers --------------------------------------------------------------------

def _hexv(b: bytes, limit: int = 16) -> str:
    if not b:
        return "(empty)"
    h = b[:limit].hex()
    return h + (f"… ({len(b)} bytes)" if len(b) > limit else "")


def _code16(namer: Callable[[int], str]) -> Callable[[int], str]:
    return lambda v: f"0x{v:04x} {namer(v)}"


def _code8(namer: Callable[[int], str]) -> Callable[[int], str]:
    return lambda v: f"{v} {namer(v)}"


def _text(b: bytes) -> str:
    try:
        s = b.decode("ascii")
    except UnicodeDecodeError:
        return _hexv(b)
    return repr(s) if s.isprintable() else _hexv(b)


# -- the span-recording walk ---------------------------------------------------------------

class _Walk:
    """Records leaf and group spans while a Reader walks the bytes."""

    def __init__(self, data: bytes):
        self.data = data
        self.leaves: list[FieldSpan] = []
        self.groups: list[FieldSpan] = []
        self.stack: list[tuple[str, bool]] = []     # (name, transparent)
        self.cursor = 0
        self.error: str | None = None

    def _path(self, name: str) -> str:
        return ".".join([*(n for n, _ in self.stack), name])

    def _colour_group(self, path: str) -> str:
        # The outermost non-transparent group; transparent ones (record[i]) only prefix paths.
        # Outside any group a field's length and items share its colour: "cipher_suites[3]"
        # and "cipher_suites.length" belong to "cipher_suites".
        names = []
        for n, transparent in self.stack:
            names.append(n)
            if not transparent:
                return ".".join(names)
        rel = path[len(".".join(names)) + 1:] if names else path
        return ".".join([*names, re.split(r"[.\[]", rel, maxsplit=1)[0]])

    def add(self, start: int, end: int, name: str, value: str = "") -> None:
        if start > self.cursor:      # never leave bytes unlabelled
            self._leaf(self.cursor, start, self._path("(unlabelled)"), "")
        if end > start:
            self._leaf(start, end, self._path(name), value)

    def _leaf(self, start: int, end: int, path: str, value: str) -> None:
        self.leaves.append(FieldSpan(start, end, path, value, self._colour_group(path)))
        self.cursor = end

    @contextmanager
    def group(self, name: str, start: int, value: str = "", transparent: bool = False):
        self.stack.append((name, transparent))
        path = self._path("")[:-1]
        colour = self._colour_group(path)
        try:
            yield
        finally:
            self.stack.pop()
            if self.cursor > start:
                self.groups.append(FieldSpan(start, self.cursor, path, value, colour))

    def fill(self, end: int, name: str = "undecoded", value: str = "") -> None:
        """Label whatever is left up to ``end`` (after an error or an unknown body)."""
        if end > self.cursor:
            self._leaf(self.cursor, end, self._path(name), value)

    # field readers: read through ``r`` and record the span
    def u8(self, r: Reader, name: str, fmt: Callable[[int], str] = str) -> int:
        s = r.offset
        v = r.u8(name)
        self.add(s, r.offset, name, fmt(v))
        return v

    def u16(self, r: Reader, name: str, fmt: Callable[[int], str] = str) -> int:
        s = r.offset
        v = r.u16(name)
        self.add(s, r.offset, name, fmt(v))
        return v

    def u24(self, r: Reader, name: str, fmt: Callable[[int], str] = str) -> int:
        s = r.offset
        v = r.u24(name)
        self.add(s, r.offset, name, fmt(v))
        return v

    def u32(self, r: Reader, name: str, fmt: Callable[[int], str] = str) -> int:
        s = r.offset
        v = r.u32(name)
        self.add(s, r.offset, name, fmt(v))
        return v

    def opaque(self, r: Reader, n: int, name: str, fmt: Callable[[bytes], str] = _hexv) -> bytes:
        s = r.offset
        v = r.opaque(n, name)
        self.add(s, r.offset, name, fmt(v))
        return v

    def rest(self, r: Reader, name: str, fmt: Callable[[bytes], str] = _hexv) -> bytes:
        s = r.offset
        v = r.rest()
        self.add(s, r.offset, name, fmt(v))
        return v

    def length(self, r: Reader, length_bytes: int, name: str) -> Reader:
        """A length-prefixed vector: the length as ``name.length``; returns the body reader."""
        s = r.offset
        sub = r.vector(length_bytes, name)
        self.add(s, s + length_bytes, f"{name}.length", f"{sub.remaining} bytes")
        return sub

    def vec(self, r: Reader, length_bytes: int, name: str, fmt: Callable[[bytes], str] = _hexv) -> bytes:
        sub = self.length(r, length_bytes, name)
        return self.rest(sub, name, fmt)

    def list16(self, r: Reader, length_bytes: int, name: str, fmt: Callable[[int], str]) -> list[int]:
        sub = self.length(r, length_bytes, name)
        out = []
        i = 0
        while not sub.at_end():
            out.append(self.u16(sub, f"{name}[{i}]", fmt))
            i += 1
        return out

    def list8(self, r: Reader, length_bytes: int, name: str, fmt: Callable[[int], str]) -> list[int]:
        sub = self.length(r, length_bytes, name)
        out = []
        i = 0
        while not sub.at_end():
            out.append(self.u8(sub, f"{name}[{i}]", fmt))
            i += 1
        return out

    def guarded(self, r: Reader, fn: Callable[[Reader], None], what: str) -> None:
        """Run a sub-walk; a DecodeError labels the rest of ``r`` as undecoded instead of escaping."""
        end = r.offset + r.remaining
        try:
            fn(r)
        except DecodeError as e:
            self.error = self.error or f"{e.path or what}: {e.reason}"
            self.fill(end, "undecoded", e.reason)
            r.rest()
            return
        if not r.at_end():
            self.fill(end, "trailing", f"{r.remaining} bytes after {what}")
            r.rest()


# -- extensions -------------------------------------------------------------------------------

def _ext_server_name(w: _Walk, r: Reader, ctx: str) -> None:
    if r.at_end():
        return
    lst = w.length(r, 2, "server_name_list")
    i = 0
    while not lst.at_end():
        with w.group(f"server_name_list[{i}]", lst.offset):
            w.u8(lst, "name_type", _code8(name_type_name))
            w.vec(lst, 2, "host_name", _text)
        i += 1


def _ext_groups(w: _Walk, r: Reader, ctx: str) -> None:
    w.list16(r, 2, "named_group_list", _code16(group_name))


def _ext_sigalgs(w: _Walk, r: Reader, ctx: str) -> None:
    w.list16(r, 2, "supported_signature_algorithms", _code16(signature_scheme_name))


def _ext_point_formats(w: _Walk, r: Reader, ctx: str) -> None:
    w.list8(r, 1, "ec_point_format_list", _code8(ec_point_format_name))


def _ext_alpn(w: _Walk, r: Reader, ctx: str) -> None:
    lst = w.length(r, 2, "protocol_name_list")
    i = 0
    while not lst.at_end():
        w.vec(lst, 1, f"protocol_name_list[{i}]", _text)
        i += 1


def _ext_supported_versions(w: _Walk, r: Reader, ctx: str) -> None:
    if ctx == "client_hello":
        sub = w.length(r, 1, "versions")
        i = 0
        while not sub.at_end():
            w.u16(sub, f"versions[{i}]", _code16(version_name))
            i += 1
    else:
        w.u16(r, "selected_version", _code16(version_name))


def _key_share_entry(w: _Walk, r: Reader, name: str) -> None:
    with w.group(name, r.offset):
        w.u16(r, "group", _code16(group_name))
        w.vec(r, 2, "key_exchange")


def _ext_key_share(w: _Walk, r: Reader, ctx: str) -> None:
    if ctx == "client_hello":
        lst = w.length(r, 2, "client_shares")
        i = 0
        while not lst.at_end():
            _key_share_entry(w, lst, f"client_shares[{i}]")
            i += 1
    elif ctx == "hello_retry_request":
        w.u16(r, "selected_group", _code16(group_name))
    else:
        _key_share_entry(w, r, "server_share")


def _ext_psk_modes(w: _Walk, r: Reader, ctx: str) -> None:
    w.list8(r, 1, "ke_modes", _code8(psk_key_exchange_mode_name))


def _ext_pre_shared_key(w: _Walk, r: Reader, ctx: str) -> None:
    if ctx != "client_hello":
        w.u16(r, "selected_identity")
        return
    ids = w.length(r, 2, "identities")
    i = 0
    while not ids.at_end():
        with w.group(f"identities[{i}]", ids.offset):
            w.vec(ids, 2, "identity")
            w.u32(ids, "obfuscated_ticket_age")
        i += 1
    binders = w.length(r, 2, "binders")
    i = 0
    while not binders.at_end():
        w.vec(binders, 1, f"binders[{i}]")
        i += 1


def _ext_renegotiation_info(w: _Walk, r: Reader, ctx: str) -> None:
    w.vec(r, 1, "renegotiated_connection")


def _ext_status_request(w: _Walk, r: Reader, ctx: str) -> None:
    if r.at_end():
        return
    if ctx == "certificate":       # TLS 1.3: the OCSP response rides in the Certificate entry
        w.u8(r, "status_type", _code8(certificate_status_type_name))
        w.vec(r, 3, "response")
        return
    w.u8(r, "status_type", _code8(certificate_status_type_name))
    w.vec(r, 2, "responder_id_list")
    w.vec(r, 2, "request_extensions")


def _ext_cookie(w: _Walk, r: Reader, ctx: str) -> None:
    w.vec(r, 2, "cookie")


def _ext_record_size_limit(w: _Walk, r: Reader, ctx: str) -> None:
    w.u16(r, "record_size_limit")


def _ext_compress_certificate(w: _Walk, r: Reader, ctx: str) -> None:
    sub = w.length(r, 1, "algorithms")
    i = 0
    while not sub.at_end():
        w.u16(sub, f"algorithms[{i}]", _code16(cert_compression_algorithm_name))
        i += 1


def _ext_max_fragment_length(w: _Walk, r: Reader, ctx: str) -> None:
    w.u8(r, "max_fragment_length", lambda v: f"{v} (2^{8 + v} bytes)" if 1 <= v <= 4 else str(v))


def _ext_heartbeat(w: _Walk, r: Reader, ctx: str) -> None:
    w.u8(r, "mode")


def _ext_early_data(w: _Walk, r: Reader, ctx: str) -> None:
    if ctx == "new_session_ticket":
        w.u32(r, "max_early_data_size")


def _ext_padding(w: _Walk, r: Reader, ctx: str) -> None:
    w.rest(r, "padding", lambda b: f"{len(b)} bytes")


def _ext_opaque(name: str) -> Callable[[_Walk, Reader, str], None]:
    def walk(w: _Walk, r: Reader, ctx: str) -> None:
        if not r.at_end():
            w.rest(r, name)
    return walk


EXTENSION_WALKERS: dict[int, Callable[[_Walk, Reader, str], None]] = {
    0: _ext_server_name,
    1: _ext_max_fragment_length,
    5: _ext_status_request,
    10: _ext_groups,
    11: _ext_point_formats,
    13: _ext_sigalgs,
    15: _ext_heartbeat,
    16: _ext_alpn,
    21: _ext_padding,
    27: _ext_compress_certificate,
    28: _ext_record_size_limit,
    35: _ext_opaque("ticket"),
    41: _ext_pre_shared_key,
    42: _ext_early_data,
    43: _ext_supported_versions,
    44: _ext_cookie,
    45: _ext_psk_modes,
    50: _ext_sigalgs,
    51: _ext_key_share,
    65281: _ext_renegotiation_info,
}


def _extensions(w: _Walk, r: Reader, ctx: str, name: str = "extensions") -> None:
    lst = w.length(r, 2, name)
    i = 0
    while not lst.at_end():
        start = lst.offset
        # Peek at the type so the group can carry its name.
        ext_type = lst.child("peek").u16() if lst.remaining >= 2 else None
        label = f"{name}[{i}]" + (f" {extension_name(ext_type)}" if ext_type is not None else "")
        with w.group(label, start):
            t = w.u16(lst, "extension_type", _code16(extension_name))
            body = w.length(lst, 2, "extension_data")
            walker = EXTENSION_WALKERS.get(t)
            if walker is None:
                if not body.at_end():
                    w.rest(body, "extension_data")
            else:
                w.guarded(body, lambda b: walker(w, b, ctx), label)
        i += 1


# -- handshake message bodies -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Hints:
    """What the body layout depends on (taken from the decoded message when there is one)."""

    version: int | None = None
    key_exchange: str | None = None
    signed: bool = True


def _is13(h: _Hints) -> bool:
    return h.version is not None and (h.version == TLS13 or h.version >> 8 in (0x7F, 0xFB))


def _client_hello(w: _Walk, r: Reader, h: _Hints) -> None:
    w.u16(r, "legacy_version", _code16(version_name))
    w.opaque(r, 32, "random", lambda b: b.hex())
    w.vec(r, 1, "legacy_session_id")
    w.list16(r, 2, "cipher_suites", _code16(cipher_suite_name))
    w.list8(r, 1, "legacy_compression_methods", _code8(compression_method_name))
    if not r.at_end():
        _extensions(w, r, "client_hello")


def _server_hello(w: _Walk, r: Reader, h: _Hints) -> None:
    v = w.u16(r, "legacy_version", _code16(version_name))
    random = w.opaque(r, 32, "random", lambda b: b.hex() + (" (HelloRetryRequest)" if b == HRR_RANDOM else ""))
    # TLS 1.3 drafts before -22 had no session id and no compression method.
    early_draft = v == TLS13 or (v >> 8 == 0x7F and (v & 0xFF) < 22)
    if not early_draft:
        w.vec(r, 1, "legacy_session_id")
    w.u16(r, "cipher_suite", _code16(cipher_suite_name))
    if not early_draft:
        w.u8(r, "legacy_compression_method", _code8(compression_method_name))
    if not r.at_end():
        _extensions(w, r, "hello_retry_request" if random == HRR_RANDOM else "server_hello")


def _certificate(w: _Walk, r: Reader, h: _Hints) -> None:
    tls13 = _is13(h)
    if tls13:
        w.vec(r, 1, "certificate_request_context")
    lst = w.length(r, 3, "certificate_list")
    i = 0
    while not lst.at_end():
        with w.group(f"certificate_list[{i}]", lst.offset):
            der = w.vec(lst, 3, "cert_data" if tls13 else "ASN.1Cert", lambda b: f"{len(b)} bytes DER")
            _describe_cert(w, der)
            if tls13:
                _extensions(w, lst, "certificate")
        i += 1


def _describe_cert(w: _Walk, der: bytes) -> None:
    # Put the subject in the leaf's value: that is what a reader wants to see when hovering.
    try:
        from ..tls.x509info import parse_certificate
        subject = parse_certificate(der).subject
    except Exception:   # noqa: BLE001 - a label must never break the view
        return
    last = w.leaves[-1]
    w.leaves[-1] = FieldSpan(last.start, last.end, last.path, f"{last.value} · {subject or '(empty subject)'}",
                             last.group)


def _ecdh_params(w: _Walk, r: Reader) -> None:
    ct = w.u8(r, "curve_type", lambda v: {3: "3 named_curve", 1: "1 explicit_prime",
                                          2: "2 explicit_char2"}.get(v, str(v)))
    if ct == 3:
        w.u16(r, "named_curve", _code16(group_name))
    else:
        raise r.error("explicit curves are not labelled", "curve_type")
    w.vec(r, 1, "public")


def _dh_params(w: _Walk, r: Reader) -> None:
    w.vec(r, 2, "dh_p", lambda b: f"{int.from_bytes(b, 'big').bit_length()}-bit prime")
    w.vec(r, 2, "dh_g")
    w.vec(r, 2, "dh_Ys")


def _server_key_exchange(w: _Walk, r: Reader, h: _Hints) -> None:
    kx = h.key_exchange or ""
    if kx.endswith("PSK"):
        w.vec(r, 2, "psk_identity_hint", _text)
    start = r.offset
    with w.group("params", start):
        if kx in ("ECDHE", "ECDH", "ECDHE_PSK"):
            _ecdh_params(w, r)
        elif kx in ("DHE", "DH", "DHE_PSK"):
            _dh_params(w, r)
        elif kx == "RSA":
            w.vec(r, 2, "rsa_modulus")
            w.vec(r, 2, "rsa_exponent")
        elif kx not in ("PSK", "RSA_PSK"):
            w.rest(r, "params")
    if h.signed and not kx.endswith("PSK") and not r.at_end():
        if h.version is None or h.version >= 0x0303:
            w.u16(r, "signature_algorithm", _code16(signature_scheme_name))
        w.vec(r, 2, "signature")


def _client_key_exchange(w: _Walk, r: Reader, h: _Hints) -> None:
    kx = h.key_exchange or ""
    if kx.endswith("PSK"):
        w.vec(r, 2, "psk_identity", _text)
    if kx in ("ECDHE", "ECDH", "ECDHE_PSK") and not r.at_end():
        w.vec(r, 1, "ecdh_Yc")
    elif kx in ("DHE", "DH", "DHE_PSK") and not r.at_end():
        w.vec(r, 2, "dh_Yc")
    elif kx in ("RSA", "RSA_PSK"):
        if h.version == 0x0300:
            w.rest(r, "encrypted_pre_master_secret")
        else:
            w.vec(r, 2, "encrypted_pre_master_secret")
    elif not r.at_end():
        w.rest(r, "exchange_keys")


def _certificate_request(w: _Walk, r: Reader, h: _Hints) -> None:
    if _is13(h):
        w.vec(r, 1, "certificate_request_context")
        _extensions(w, r, "certificate_request")
        return
    w.list8(r, 1, "certificate_types", _code8(client_certificate_type_name))
    if h.version is None or h.version >= 0x0303:
        w.list16(r, 2, "supported_signature_algorithms", _code16(signature_scheme_name))
    cas = w.length(r, 2, "certificate_authorities")
    i = 0
    while not cas.at_end():
        w.vec(cas, 2, f"certificate_authorities[{i}]", _dn)
        i += 1


def _dn(der: bytes) -> str:
    try:
        from ..tls.x509info import parse_distinguished_name
        return parse_distinguished_name(der).rfc4514 or _hexv(der)
    except Exception:   # noqa: BLE001
        return _hexv(der)


def _certificate_verify(w: _Walk, r: Reader, h: _Hints) -> None:
    if h.version is None or h.version >= 0x0303:
        w.u16(r, "algorithm", _code16(signature_scheme_name))
    w.vec(r, 2, "signature")


def _finished(w: _Walk, r: Reader, h: _Hints) -> None:
    w.rest(r, "verify_data", lambda b: f"{b.hex()} ({len(b)} bytes)")


def _new_session_ticket(w: _Walk, r: Reader, h: _Hints) -> None:
    if _is13(h):
        w.u32(r, "ticket_lifetime", lambda v: f"{v} s")
        w.u32(r, "ticket_age_add")
        w.vec(r, 1, "ticket_nonce")
        w.vec(r, 2, "ticket", lambda b: f"{len(b)} bytes")
        _extensions(w, r, "new_session_ticket")
    else:
        w.u32(r, "ticket_lifetime_hint", lambda v: f"{v} s")
        w.vec(r, 2, "ticket", lambda b: f"{len(b)} bytes")


def _encrypted_extensions(w: _Walk, r: Reader, h: _Hints) -> None:
    _extensions(w, r, "encrypted_extensions")


def _key_update(w: _Walk, r: Reader, h: _Hints) -> None:
    w.u8(r, "request_update", lambda v: {0: "0 update_not_requested", 1: "1 update_requested"}.get(v, str(v)))


def _certificate_status(w: _Walk, r: Reader, h: _Hints) -> None:
    w.u8(r, "status_type", _code8(certificate_status_type_name))
    w.vec(r, 3, "response", lambda b: f"{len(b)} bytes OCSPResponse")


def _empty(w: _Walk, r: Reader, h: _Hints) -> None:
    pass


MESSAGE_WALKERS: dict[int, Callable[[_Walk, Reader, _Hints], None]] = {
    0: _empty,
    1: _client_hello,
    2: _server_hello,
    4: _new_session_ticket,
    5: _empty,
    8: _encrypted_extensions,
    11: _certificate,
    12: _server_key_exchange,
    13: _certificate_request,
    14: _empty,
    15: _certificate_verify,
    16: _client_key_exchange,
    20: _finished,
    22: _certificate_status,
    24: _key_update,
}


def _hints_from(message, version: int | None, key_exchange: str | None) -> _Hints:
    """The decoded message knows which layout it was read with; prefer it over the version."""
    t = type(message).__name__
    if t == "Certificate":
        version = TLS13 if message.certificate_request_context is not None else min(version or 0x0303, 0x0303)
    elif t == "CertificateRequest":
        if message.certificate_request_context is not None:
            version = TLS13
        else:
            version = 0x0303 if message.supported_signature_algorithms is not None else 0x0301
    elif t == "NewSessionTicket":
        version = TLS13 if message.ticket_age_add is not None else 0x0303
    elif t == "CertificateVerify":
        version = (version or 0x0303) if message.algorithm is not None else 0x0301
    signed = True
    if t in ("ServerKeyExchange", "ClientKeyExchange"):
        key_exchange = message.key_exchange or key_exchange
        if t == "ServerKeyExchange":
            signed = message.signature is not None
            if message.signature is not None and message.signature_algorithm is None:
                version = 0x0301
    return _Hints(version, key_exchange, signed)


def _walk_handshake(w: _Walk, r: Reader, hints: _Hints) -> str:
    """One handshake message (4-byte header + body) from ``r``; returns its name."""
    mt = w.u8(r, "msg_type", _code8(handshake_type_name))
    n = w.u24(r, "length", lambda v: f"{v} bytes")
    if n > r.remaining:
        w.error = w.error or f"truncated: length {n}, {r.remaining} bytes present"
    body = r.sub(min(n, r.remaining))
    walker = MESSAGE_WALKERS.get(mt)
    if walker is None:
        if not body.at_end():
            w.rest(body, "body")
    else:
        w.guarded(body, lambda b: walker(w, b, hints), handshake_type_name(mt))
    return handshake_type_name(mt)


def _ordered(groups: list[FieldSpan]) -> tuple[FieldSpan, ...]:
    # Groups are recorded as they close (inner first); present them outer first, in byte order.
    return tuple(sorted(groups, key=lambda g: (g.start, -g.end)))


# -- public constructors --------------------------------------------------------------------------

def handshake_view(raw: bytes, *, version: int | None = None, key_exchange: str | None = None,
                   message=None, title: str | None = None) -> ByteView:
    """Byte view of one handshake message with its 4-byte header (``TimelineEntry.raw``).

    ``version`` (negotiated) and ``key_exchange`` (of the suite: "ECDHE", "DHE", "RSA", ...)
    choose the layout of bodies that depend on them; a decoded ``message`` settles that
    more precisely. Never raises on malformed bytes.
    """
    raw = bytes(raw)
    w = _Walk(raw)
    hints = _hints_from(message, version, key_exchange) if message is not None else _Hints(version, key_exchange)
    r = Reader(raw, "")
    name = "handshake message"
    try:
        name = _walk_handshake(w, r, hints)
    except DecodeError as e:
        w.error = w.error or f"{e.path}: {e.reason}"
    w.fill(len(raw), "undecoded" if w.error or len(raw) < 4 else "trailing",
           f"{len(raw) - w.cursor} bytes")
    return ByteView(title or f"{name} ({len(raw)} bytes)", raw, tuple(w.leaves), _ordered(w.groups), w.error)


def alert_view(level: int, description: int, title: str | None = None) -> ByteView:
    """Byte view of an alert body (2 bytes: level, description)."""
    data = bytes((level & 0xFF, description & 0xFF))
    w = _Walk(data)
    r = Reader(data)
    w.u8(r, "level", _code8(alert_level_name))
    w.u8(r, "description", _code8(alert_description_name))
    return ByteView(title or f"Alert ({alert_level_name(level)}, {alert_description_name(description)})",
                    data, tuple(w.leaves), _ordered(w.groups))


def record_view(data: bytes, *, version: int | None = None, key_exchange: str | None = None,
                encrypted: bool = False, title: str | None = None) -> ByteView:
    """Byte view of one or more TLS records (5-byte headers and fragments).

    Cleartext handshake records show each message inside (when a message is
    complete within the bytes given), alerts and ChangeCipherSpec their fields;
    ``encrypted`` records (and application data) show the fragment as one span.
    """
    data = bytes(data)
    w = _Walk(data)
    r = Reader(data)
    i = 0
    hints = _Hints(version, key_exchange)
    try:
        while not r.at_end():
            with w.group(f"record[{i}]", r.offset, transparent=True):
                ct = w.u8(r, "content_type", _code8(content_type_name))
                w.u16(r, "legacy_record_version", _code16(version_name))
                n = w.u16(r, "length", lambda v: f"{v} bytes")
                frag = r.sub(n, "fragment")
                if encrypted or ct == 23:
                    w.rest(frag, "encrypted_record" if encrypted else "application_data",
                           lambda b: f"{len(b)} bytes")
                elif ct == 21 and frag.remaining == 2:
                    w.u8(frag, "level", _code8(alert_level_name))
                    w.u8(frag, "description", _code8(alert_description_name))
                elif ct == 20:
                    w.rest(frag, "change_cipher_spec", _hexv)
                elif ct == 22:
                    j = 0
                    while not frag.at_end():
                        peek = frag.child("peek")
                        if peek.remaining < 4 or (peek.u8(), peek.u24())[1] > peek.remaining:
                            w.rest(frag, "handshake_fragment",
                                   lambda b: f"{len(b)} bytes (a message continued across records)")
                            break
                        with w.group(f"message[{j}] {handshake_type_name(data[frag.offset])}", frag.offset,
                                     transparent=True):
                            _walk_handshake(w, frag, hints)
                        j += 1
                elif not frag.at_end():
                    w.rest(frag, "fragment")
            i += 1
    except DecodeError as e:
        w.error = w.error or f"{e.path}: {e.reason}"
    w.fill(len(data), "undecoded", "")
    return ByteView(title or f"{i} record{'s' if i != 1 else ''} ({len(data)} bytes)", data, tuple(w.leaves),
                    _ordered(w.groups), w.error)


def entry_view(report, entry) -> ByteView | None:
    """Byte view of one timeline entry of a report, or None when there are no bytes to show.

    Handshake messages (cleartext or decrypted) use ``entry.raw``; alerts with a
    known level and description are shown as their 2-byte body.
    """
    if entry.raw is not None and entry.handshake_type is not None and entry.name != "SSLv2ClientHello":
        kx = None
        if report is not None and report.cipher_suite is not None:
            info = cipher_suite_info(report.cipher_suite)
            kx = info.key_exchange if info is not None else None
        version = report.version if report is not None else None
        return handshake_view(entry.raw, version=version, key_exchange=kx, message=entry.message,
                              title=f"{entry.name} from {'client' if entry.from_client else 'server'}"
                                    f" ({len(entry.raw)} bytes)")
    msg = entry.message
    if entry.content_type == 21 and msg is not None and msg.level is not None and msg.description is not None:
        return alert_view(msg.level, msg.description,
                          title=f"Alert from {'client' if entry.from_client else 'server'}")
    return None


# -- rendering ------------------------------------------------------------------------------------

# Pastel backgrounds readable with dark text; cycled per top-level field.
_PALETTE = ("#fde2e4", "#dbeafe", "#dcfce7", "#fef3c7", "#ede9fe", "#cffafe", "#fce7f3", "#e2e8f0",
            "#ffedd5", "#d1fae5", "#e0e7ff", "#fef9c3")
_RICH_PALETTE = ("on #5f0000", "on #00005f", "on #005f00", "on #5f5f00", "on #5f005f", "on #005f5f",
                 "on #3a3a3a", "on #875f00", "on #00875f", "on #5f0087", "on #870000", "on #005f87")


def _colours(view: ByteView, palette) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in view.fields:
        if f.group not in out:
            out[f.group] = palette[len(out) % len(palette)]
    return out


def _rows(view: ByteView, columns: int, max_bytes: int | None):
    """Yield (row_offset, [(start, end, FieldSpan)]) with spans cut at row boundaries."""
    limit = len(view.data) if max_bytes is None else min(len(view.data), max_bytes)
    fields = list(view.fields)
    k = 0
    for row in range(0, limit, columns):
        row_end = min(row + columns, limit)
        parts = []
        while k < len(fields) and fields[k].end <= row:
            k += 1
        j = k
        while j < len(fields) and fields[j].start < row_end:
            f = fields[j]
            parts.append((max(f.start, row), min(f.end, row_end), f))
            j += 1
        yield row, parts


def byteview_html(view: ByteView, *, columns: int = 16, max_bytes: int | None = 1024) -> str:
    """HTML: a hex dump whose bytes are ``<span title="field = value">`` coloured per top-level
    field, followed by a legend (field, byte range, value). ``max_bytes`` caps the dump
    (the legend always lists every field)."""
    colours = _colours(view, _PALETTE)
    esc = html.escape
    out = [f'<div class="tlsscope-bytes" style="font-family:monospace;font-size:12px">'
           f'<div style="font-weight:bold;margin:4px 0">{esc(view.title)}</div>'
           '<pre style="line-height:1.5;margin:0">']
    for row, parts in _rows(view, columns, max_bytes):
        out.append(f'<span class="off" style="color:#888">{row:04x}</span>  ')
        used = 0
        for i, (s, e, f) in enumerate(parts):
            hexs = " ".join(f"{b:02x}" for b in view.data[s:e])
            out.append(f'<span class="field" data-path="{esc(f.path)}" data-start="{s}" data-end="{e}" '
                       f'title="{esc(f.label)} [{f.start}:{f.end}]" style="background:{colours[f.group]}">'
                       f'{hexs}</span>')
            used += e - s
            if i < len(parts) - 1:
                out.append(" ")
        last = row + used
        out.append("   " * (columns - used) + "  ")
        out.append(esc("".join(chr(b) if 32 <= b < 127 else "." for b in view.data[row:last])))
        out.append("\n")
    shown = len(view.data) if max_bytes is None else min(len(view.data), max_bytes)
    if shown < len(view.data):
        out.append(f'<span style="color:#888">… {len(view.data) - shown} more bytes</span>\n')
    out.append("</pre>")
    if view.error:
        out.append(f'<div style="color:#b00">undecoded: {esc(view.error)}</div>')
    out.append('<table class="legend" style="border-collapse:collapse;margin-top:4px">')
    for group, s, e, value in view.legend():
        out.append(f'<tr><td style="background:{colours[group]};padding:0 6px">{esc(group)}</td>'
                   f'<td style="color:#888;padding:0 6px">[{s}:{e}] {e - s} B</td>'
                   f'<td style="padding:0 6px">{esc(value[:120])}</td></tr>')
    out.append("</table></div>")
    return "".join(out)


def byteview_rich(view: ByteView, *, columns: int = 16, max_bytes: int | None = 512):
    """A rich renderable: coloured hex rows, then a legend with each field's range and value."""
    from rich.console import Group
    from rich.text import Text

    colours = _colours(view, _RICH_PALETTE)
    lines = [Text(view.title, style="bold")]
    for row, parts in _rows(view, columns, max_bytes):
        t = Text(f"{row:04x}  ", style="dim")
        used = 0
        for i, (s, e, f) in enumerate(parts):
            t.append(" ".join(f"{b:02x}" for b in view.data[s:e]), style=colours[f.group])
            used += e - s
            if i < len(parts) - 1:
                t.append(" ")
        t.append("   " * (columns - used) + " ")
        t.append("".join(chr(b) if 32 <= b < 127 else "." for b in view.data[row:row + used]), style="dim")
        lines.append(t)
    shown = len(view.data) if max_bytes is None else min(len(view.data), max_bytes)
    if shown < len(view.data):
        lines.append(Text(f"… {len(view.data) - shown} more bytes", style="dim"))
    if view.error:
        lines.append(Text(f"undecoded: {view.error}", style="red"))
    for group, s, e, value in view.legend():
        t = Text("  ", style=colours[group])
        t.append(f" {group}", style="bold")
        t.append(f"  [{s}:{e}]", style="dim")
        if value:
            t.append(f"  {value[:100]}")
        lines.append(t)
    return Group(*lines)
