"""Security findings about one connection: what a config review or an incident responder flags.

Each rule reads the report (the facts) and adds ``Finding(severity, code, message)``.
Codes are a public contract (users grep for them); messages say what to do.
"""

from __future__ import annotations

from . import hello
from .dtls import tls_version_of
from .findings import Finding, Severity
from .registry import (TLS_EMPTY_RENEGOTIATION_INFO_SCSV, TLS_FALLBACK_SCSV, alert_description_name,
                       cipher_suite_info, cipher_suite_name, group_name, version_name)

TLS13, TLS12, TLS11, TLS10, SSL3, SSL2 = 0x0304, 0x0303, 0x0302, 0x0301, 0x0300, 0x0002
DTLS10, DTLS_OPENSSL_PRE = 0xFEFF, 0x0100


def _tls_equivalent(v: int | None) -> int | None:
    """DTLS versions count down; the rules compare the TLS version each one is built on."""
    return None if v is None else tls_version_of(v)

# Curves RFC 8422 deprecated: all binary (sect*) curves and the prime curves below secp224r1;
# high severity below 224 bits, medium for the larger binary curves.
_WEAK_CURVES = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}   # sect163k1..secp224k1
_CURVE_BITS = {1: 163, 2: 163, 3: 163, 4: 193, 5: 193, 6: 233, 7: 233, 8: 239, 9: 283, 10: 283, 11: 409,
               12: 409, 13: 571, 14: 571, 15: 160, 16: 160, 17: 160, 18: 192, 19: 192, 20: 224}

# Plain-words causes of fatal alerts, by description code (RFC 8446 §6.2 and field experience).
_ALERT_CAUSES = {
    10: "a peer received a message it did not expect at this point (implementation bug or middlebox interference)",
    20: "a record failed its integrity check (bad_record_mac): corrupted traffic, a middlebox, or mismatched keys",
    40: "no acceptable set of parameters: no common cipher suite, group or signature algorithm",
    42: "a certificate was corrupt or its signature could not be verified (bad_certificate)",
    43: "a certificate of an unsupported type was presented",
    44: "a certificate was revoked by its signer (check the CRL/OCSP of the CA)",
    45: "a certificate has expired or is not yet valid (check the clocks and the validity dates)",
    46: "a certificate was rejected for an unspecified reason (certificate_unknown): often an untrusted or "
        "wrong-purpose certificate",
    47: "a field in the handshake was out of range or inconsistent (illegal_parameter)",
    48: "the certificate chain does not lead to a CA the peer trusts (unknown_ca): install the issuing CA on the peer",
    49: "the peer refused access after a valid certificate (access_denied)",
    50: "a message could not be decoded (decode_error)",
    51: "a signature or Finished check failed (decrypt_error): wrong key, bad CertificateVerify or transcript mismatch",
    70: "no protocol version in common (protocol_version): enable a common TLS version on both sides",
    71: "the server requires stronger ciphers than the client offered (insufficient_security)",
    80: "the peer hit an internal error unrelated to the protocol",
    86: "an inappropriate fallback was detected (TLS_FALLBACK_SCSV): the client retried with a lower version",
    90: "the user cancelled the handshake",
    109: "a mandatory extension was missing (missing_extension)",
    110: "an extension was sent that the peer did not offer (unsupported_extension)",
    112: "the server does not know the requested host name (unrecognized_name): check the SNI",
    113: "the OCSP response was invalid (bad_certificate_status_response)",
    115: "unknown PSK identity: the resumption ticket or PSK was not recognised",
    116: "the server requires a client certificate and none was sent (certificate_required)",
    120: "no application protocol in common (no_application_protocol): check ALPN",
}


def _add(findings: list, severity: Severity, code: str, message: str) -> None:
    f = Finding(severity, code, message)
    if all(x.code != code for x in findings):
        findings.append(f)


def _suite_names(codes, limit: int = 5) -> str:
    codes = list(codes)
    s = ", ".join(cipher_suite_name(c) for c in codes[:limit])
    return s + (f" and {len(codes) - limit} more" if len(codes) > limit else "")


# A capture repeats the same few client offers thousands of times. What the rules conclude from
# the offer alone is memoised on exactly the fields they read, bounded, and replayed through
# ``_add`` so that order and de-duplication are those of a fresh evaluation.
_OFFER_CACHE_MAX = 4096
_offer_cache: dict = {}
_CIPHER_FLAGS = (("null_cipher", "null_cipher", "NULL encryption (no confidentiality)", Severity.CRITICAL),
                 ("anonymous", "anon_cipher", "anonymous key exchange (no server authentication)", Severity.CRITICAL),
                 ("export", "export_cipher", "EXPORT-grade cipher (FREAK/Logjam)", Severity.CRITICAL),
                 ("rc4", "rc4_cipher", "RC4 (prohibited by RFC 7465)", Severity.HIGH),
                 ("des", "des_cipher", "DES/3DES (Sweet32)", Severity.MEDIUM))


def _offer_key(ch) -> tuple:
    sv = hello.extension(ch, hello.SUPPORTED_VERSIONS)
    return (ch.legacy_version, tuple(ch.cipher_suites), tuple(ch.legacy_compression_methods),
            tuple(hello.extension_types(ch)), None if sv is None else sv.data)


_last_key: list = [None, None]          # (ClientHello, its key): the rules ask up to three times


def _offer_findings(kind: str, ch, compute):
    if _last_key[0] is not ch:
        _last_key[0], _last_key[1] = ch, _offer_key(ch)
    key = (kind, _last_key[1])
    got = _offer_cache.get(key)
    if got is None:
        got = compute(ch)
        if len(_offer_cache) >= _OFFER_CACHE_MAX:
            _offer_cache.clear()
        _offer_cache[key] = got
    return got


def _replay(out: list, findings) -> None:
    for f in findings:
        _add(out, f.severity, f.code, f.message)


def _client_protocol_rules(ch) -> tuple:
    """Findings from the ClientHello's versions, compression and signalling alone."""
    out: list = []
    offered = set(hello.supported_versions(ch))
    max_legacy = ch.legacy_version
    for v, code, sev in ((SSL3, "ssl3_offered", Severity.HIGH), (TLS10, "tls10_offered", Severity.LOW),
                         (TLS11, "tls11_offered", Severity.LOW), (DTLS10, "dtls10_offered", Severity.LOW)):
        if v in offered or (not offered and max_legacy == v):
            _add(out, sev, code, f"the client offers {version_name(v)} (deprecated by RFC 8996)")
    offered = {_tls_equivalent(v) for v in offered}
    if any(m != 0 for m in ch.legacy_compression_methods):
        _add(out, Severity.LOW, "compression_offered", "the client offers TLS compression (CRIME)")
    suites = set(ch.cipher_suites)
    if TLS_FALLBACK_SCSV in suites:
        _add(out, Severity.INFO, "fallback_scsv",
             "the client signals a fallback retry (TLS_FALLBACK_SCSV): an earlier attempt with a higher version failed")
    if not (TLS_EMPTY_RENEGOTIATION_INFO_SCSV in suites or hello.has_extension(ch, hello.RENEGOTIATION_INFO)) \
            and offered != {TLS13}:
        _add(out, Severity.MEDIUM, "no_secure_renegotiation_client",
             "the client does not signal secure renegotiation (no renegotiation_info, no SCSV; RFC 5746)")
    if hello.has_extension(ch, hello.HEARTBEAT):
        _add(out, Severity.LOW, "heartbeat_offered", "the client offers the heartbeat extension (Heartbleed surface)")
    return tuple(out)


def _client_cipher_rules(ch) -> tuple:
    """Findings from the cipher suites the client offers."""
    return _suite_offer_rules(ch.cipher_suites)


def _suite_offer_rules(suites) -> tuple:
    out: list = []
    flags = _CIPHER_FLAGS
    infos = [i for i in (cipher_suite_info(c) for c in suites) if i is not None and not i.signaling]
    for attr, code, what, sev in flags:
        bad = [i.code for i in infos if getattr(i, attr)]
        if bad:
            _add(out, Severity.LOW if sev < Severity.CRITICAL else Severity.MEDIUM, f"{code}_offered",
                 f"the client offers {what}: {_suite_names(bad)}")
    static = [i.code for i in infos if i.key_exchange in ("RSA", "DH", "ECDH") and not i.tls13]
    if static:
        _add(out, Severity.INFO, "static_rsa_offered",
             f"the client offers {len(static)} suite{'s' if len(static) > 1 else ''} without forward secrecy "
             f"(e.g. {_suite_names(static, 2)})")
    return tuple(out)


def _strength(i) -> tuple:
    """Order of preference a configuration review applies: no broken cipher, then forward secrecy, then AEAD."""
    return (not (i.null_cipher or i.anonymous or i.export or i.rc4 or i.des), i.forward_secrecy, i.aead)


def _needs_tls12(i) -> bool:
    return i.aead or i.mac in ("SHA256", "SHA384")      # AEAD and SHA-2 HMAC suites are TLS 1.2 only


def _stronger_suites(suites, chosen, version: int) -> list:
    """Offered suites the server could have chosen instead (same authentication, usable at ``version``)."""
    want = _strength(chosen)
    out = [i for i in (cipher_suite_info(c) for c in suites)
           if i is not None and not i.tls13 and not i.signaling and i.authentication == chosen.authentication
           and not (_needs_tls12(i) and version < TLS12) and _strength(i) > want]
    return [i.code for i in sorted(out, key=_strength, reverse=True)]


def protocol_rules(r, out: list) -> None:
    ch, sh = r.client_hello, r.server_hello
    st = r.state
    if st is not None and st.sslv2_client_hello is not None:
        v2 = st.sslv2_client_hello
        _add(out, Severity.MEDIUM, "sslv2_compatible_hello",
             "the client sent an SSLv2-compatible ClientHello (obsolete format, RFC 6176 forbids SSL 2.0)")
        v2_kinds = [c for c in v2.cipher_specs if c >> 16]
        if v2.version == SSL2 or v2_kinds:
            _add(out, Severity.CRITICAL if v2.version == SSL2 else Severity.HIGH, "sslv2_offered",
                 ("the client offers only SSL 2.0" if v2.version == SSL2 else
                  f"the client offers SSL 2.0 ({len(v2_kinds)} SSL 2.0 cipher kinds): it would speak SSL 2.0 "
                  "(DROWN) to a server that does"))
        for v, code, sev in ((SSL3, "ssl3_offered", Severity.HIGH), (TLS10, "tls10_offered", Severity.LOW),
                             (TLS11, "tls11_offered", Severity.LOW)):
            if v2.version == v:
                _add(out, sev, code, f"the client offers {version_name(v)} (deprecated by RFC 8996)")
        if TLS_EMPTY_RENEGOTIATION_INFO_SCSV not in v2.cipher_specs:
            _add(out, Severity.MEDIUM, "no_secure_renegotiation_client",
                 "the client does not signal secure renegotiation (no SCSV in its SSLv2-compatible hello; RFC 5746)")
    if ch is not None:
        _replay(out, _offer_findings("protocol", ch, _client_protocol_rules))
    if sh is None:
        return
    if r.version in (DTLS10, DTLS_OPENSSL_PRE):
        _add(out, Severity.MEDIUM, "dtls10_negotiated",
             f"{version_name(r.version)} negotiated (deprecated by RFC 8996): require DTLS 1.2+")
    v = r.version
    if v == SSL3:
        _add(out, Severity.HIGH, "ssl3_negotiated", "SSL 3.0 negotiated (POODLE; prohibited by RFC 7568)")
    elif v == TLS10:
        _add(out, Severity.MEDIUM, "tls10_negotiated", "TLS 1.0 negotiated (deprecated by RFC 8996): require TLS 1.2+")
    elif v == TLS11:
        _add(out, Severity.MEDIUM, "tls11_negotiated", "TLS 1.1 negotiated (deprecated by RFC 8996): require TLS 1.2+")
    if sh.legacy_compression_method != 0:
        _add(out, Severity.HIGH, "tls_compression", "TLS compression negotiated (CRIME): disable compression")
    v = _tls_equivalent(v)
    if v is not None and v <= TLS12:
        if not hello.has_extension(sh, hello.RENEGOTIATION_INFO):
            _add(out, Severity.MEDIUM, "insecure_renegotiation",
                 "the server does not support secure renegotiation (no renegotiation_info; RFC 5746)")
        if not hello.has_extension(sh, hello.EXTENDED_MASTER_SECRET):
            _add(out, Severity.LOW, "no_extended_master_secret",
                 "no extended master secret (RFC 7627): the session is exposed to triple-handshake attacks")
    if hello.has_extension(sh, hello.HEARTBEAT):
        _add(out, Severity.MEDIUM, "heartbeat_negotiated",
             "the server enables the heartbeat extension (Heartbleed surface): disable it unless needed")
    if sh.downgrade_sentinel:
        client_max = max(hello.supported_versions(ch) or [ch.legacy_version]) if ch is not None else None
        if client_max is not None and client_max >= TLS13 and client_max < 0x7F00:
            _add(out, Severity.HIGH, "downgrade_sentinel",
                 f"the server's random carries the TLS 1.3 downgrade sentinel ({sh.downgrade_sentinel}) although "
                 "the client offered TLS 1.3: a downgrade attack or a broken middlebox; the client must abort")
        else:
            _add(out, Severity.INFO, "downgrade_sentinel",
                 f"the server's random carries the downgrade sentinel ({sh.downgrade_sentinel}): the server supports "
                 f"a higher version than the client offered ({version_name(client_max) if client_max else '?'})")
    # place further ClientHellos by position: before the ServerHello (beyond an HRR retry: a
    # duplicate) or after it (a renegotiation)
    before = after = 0
    sh_seen = False
    several = st is not None and (st.renegotiations or st.client_hello_2 is not None)
    for e in (r.timeline if several else ()):
        if e.from_client and e.handshake_type == 1 and e.content_type == 22:
            if sh_seen:
                after += 1
            else:
                before += 1
        elif not e.from_client and e.handshake_type == 2 and e.name != "HelloRetryRequest":
            sh_seen = True
    # DTLS: a HelloVerifyRequest asks for the ClientHello again, with the cookie (RFC 6347 §4.2.1); a QUIC
    # Retry makes the client start again with a new Initial (RFC 9000 §17.2.5.2)
    verify = (any(e.handshake_type == 3 and not e.from_client and e.content_type == 22 for e in r.timeline)
              or bool(r.quic and r.quic["packets"]["server"].get("retry"))) if before > 1 else False
    if before > 1 + (r.hello_retry_request is not None) + verify:
        _add(out, Severity.LOW, "duplicate_client_hello",
             f"the client sent {before} ClientHellos before the ServerHello without a HelloRetryRequest "
             "between them (an application retry, or a crafted stream)")
    if after:
        secure = v is not None and v <= TLS12 and hello.has_extension(sh, hello.RENEGOTIATION_INFO)
        _add(out, Severity.INFO if secure else Severity.HIGH, "renegotiation",
             f"{after} renegotiation(s) after the first handshake, "
             + ("secure (renegotiation_info, RFC 5746)" if secure else
                "insecure (no renegotiation_info: CVE-2009-3555 prefix injection)"))


def cipher_rules(r, out: list) -> None:
    ch, sh = r.client_hello, r.server_hello
    flags = _CIPHER_FLAGS
    v2 = r.state.sslv2_client_hello if r.state is not None else None
    if ch is not None:
        _replay(out, _offer_findings("cipher", ch, _client_cipher_rules))
    elif v2 is not None:
        _replay(out, _suite_offer_rules([c for c in v2.cipher_specs if not c >> 16]))
    if sh is None or r.cipher_suite is None:
        return
    info = cipher_suite_info(r.cipher_suite)
    if info is None:
        return
    name = info.name
    for attr, code, what, sev in flags:
        if getattr(info, attr):
            _add(out, sev, f"{code}_negotiated", f"{name} negotiated: {what}")
    if info.key_exchange in ("RSA", "DH", "ECDH", "RSA_PSK", "PSK") and not info.tls13:
        _add(out, Severity.MEDIUM, "static_rsa_negotiated" if info.key_exchange.startswith("RSA") else "no_forward_secrecy",
             f"{name} negotiated: static key exchange, no forward secrecy (a stolen server key decrypts past traffic)")
    if info.mode == "CBC" and (_tls_equivalent(r.version) or 0) <= TLS12 and not hello.has_extension(sh, hello.ENCRYPT_THEN_MAC):
        _add(out, Severity.LOW, "cbc_without_etm",
             f"{name}: CBC with MAC-then-encrypt (no encrypt_then_mac, RFC 7366): padding-oracle class (Lucky13)")
    # Preference: the client offered a stronger suite the server could have used (same certificate
    # type, usable at the negotiated version) but the server chose this one.
    offered = ch.cipher_suites if ch is not None else [c for c in v2.cipher_specs if not c >> 16] if v2 else ()
    v = _tls_equivalent(r.version)
    if offered and not info.tls13 and not (info.aead and info.forward_secrecy) and v is not None:
        better = (_offer_findings(("better", info.code, v), ch,
                                  lambda c: _stronger_suites(c.cipher_suites, info, v))
                  if ch is not None else _stronger_suites(offered, info, v))
        if better:
            _add(out, Severity.MEDIUM, "server_prefers_weaker_cipher",
                 f"the server chose {name} although the client offered {_suite_names(better, 2)}: "
                 "put ECDHE+AEAD suites first in the server's cipher list and enforce server preference")


def key_exchange_rules(r, out: list) -> None:
    st = r.state
    ske = st.server_key_exchange if st is not None else None
    if ske is not None:
        p_bits = getattr(ske, "p_bits", None)
        if p_bits:
            if p_bits < 1024:
                _add(out, Severity.CRITICAL, "weak_dh_group", f"DHE group of {p_bits} bits (Logjam): use ≥ 2048 bits or ECDHE")
            elif p_bits < 2048:
                _add(out, Severity.HIGH, "weak_dh_group", f"DHE group of {p_bits} bits (Logjam): use ≥ 2048 bits or ECDHE")
    g = r.group
    if g is not None and g in _WEAK_CURVES:
        _add(out, Severity.HIGH if _CURVE_BITS.get(g, 0) < 224 else Severity.MEDIUM, "weak_curve",
             f"key exchange on {group_name(g)} ({_CURVE_BITS.get(g)}-bit curve): use x25519 or secp256r1+")


# bad_certificate, certificate_revoked, certificate_expired, certificate_unknown, unknown_ca
_CERTIFICATE_ALERTS = frozenset((42, 44, 45, 46, 48))


def _strict_only(r, side: str) -> bool:
    """The side's chain passed the default check but has -x509_strict violations."""
    chk = (r.certificate_checks or {}).get(side)
    return chk is not None and chk.status == "ok" and any(f.code == "x509_strict_violation" for f in chk.findings)


def alert_rules(r, out: list) -> None:
    st = r.state
    for a in r.alerts:
        if a.level != 2 or a.description is None:
            continue
        who = "client" if a.from_client else "server"
        desc = alert_description_name(a.description)
        cause = _ALERT_CAUSES.get(a.description, "")
        if a.description == 40 and not a.from_client and st is not None and st.certificate_request is not None \
                and not st.certificates.get("client"):
            cause = "the server requires a client certificate and none was sent"
        elif a.description == 40 and r.server_hello is None:
            cause = "no cipher suite, version or group in common with the client's offer"
        elif a.description in _CERTIFICATE_ALERTS and not a.from_client:
            cause = "the server rejected the client certificate: " + cause
        elif a.description in _CERTIFICATE_ALERTS and a.from_client:
            cause = "the client rejected the server certificate: " + cause
        if a.description in _CERTIFICATE_ALERTS and _strict_only(r, "server" if a.from_client else "client"):
            cause += ("; the chain passes OpenSSL's default checks against --ca but breaks rules of -x509_strict "
                      "(x509_strict_violation), which a strict verifier such as a Python 3.13+ client applies: "
                      "see --x509-strict")
        _add(out, Severity.HIGH, f"alert_{desc}",
             f"fatal alert {desc} from the {who}" + (f": {cause}" if cause else ""))
    if st is not None:
        for code, msg in st.http_notes:
            _add(out, Severity.HIGH, code, msg)


HISTORY_LETTERS = {0: "h", 1: "c", 2: "s", 3: "v", 4: "t", 5: "e", 6: "j", 8: "o", 11: "x", 12: "k", 13: "r",
                   14: "n", 15: "y", 16: "g", 20: "f", 21: "w", 22: "u", 23: "a", 24: "p", 254: "m"}


def history(r) -> str:
    """Zeek's ssl_history letters: upper case from the client, lower case from the server."""
    st = r.state
    out = []
    if st is not None and st.swapped:
        out.append("^")
    for e in r.timeline:
        if e.content_type == 22 and (not e.encrypted or e.decrypted) and e.handshake_type is not None:
            ch = HISTORY_LETTERS.get(e.handshake_type, "z")
            if e.name == "HelloRetryRequest":
                ch = "j"
        elif e.content_type == 20:
            ch = "i"
        elif e.content_type == 21 and (not e.encrypted or e.decrypted):
            ch = "l"
        elif e.content_type == 23:
            ch = "d"
        elif e.content_type == 24:
            ch = "b"
        elif e.content_type in (21, 22):
            continue        # encrypted handshake/alert: not seen by a passive observer without keys
        else:
            ch = "q"
        out.append(ch.upper() if e.from_client else ch)
        if len(out) >= 100:
            break
    return "".join(out)


def apply_rules(r) -> None:
    out: list = []
    protocol_rules(r, out)
    cipher_rules(r, out)
    key_exchange_rules(r, out)
    alert_rules(r, out)
    existing = {f.code for f in r.findings}
    r.findings.extend(f for f in out if f.code not in existing)
    r.history = history(r)
