"""One-line descriptions of records and messages (plain strings; shared by every renderer)."""

from __future__ import annotations

import datetime

from .. import hello
from ..registry import (alert_description_name, alert_level_name, cipher_suite_name, group_name,
                        signature_scheme_name, version_name)


def when(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _names(codes, namer, limit: int = 4) -> str:
    codes = list(codes)
    shown = ", ".join(namer(c) for c in codes[:limit])
    return shown + (f", … (+{len(codes) - limit})" if len(codes) > limit else "")


def describe_message(entry) -> str:
    """Key facts of one timeline entry, e.g. 'ServerHello · TLS 1.3 · TLS_AES_256_GCM_SHA384 · x25519'."""
    msg = entry.message
    name = entry.name
    parts = [name]
    if entry.error:
        parts.append(f"MALFORMED: {entry.error}")
        return " · ".join(parts)
    if name.startswith("QUIC "):
        # Handshake/0-RTT packets of a QUIC connection, coalesced: readable only with keys
        n = f"{entry.count} packets, " if entry.count > 1 else ""
        how = "decrypted" if entry.decrypted else "encrypted"
        return f"{name}s · {n}{entry.length} bytes {how}" if entry.count > 1 else \
            f"{name} · {entry.length} bytes {how}"
    if entry.content_type == 23:
        tail = "decrypted" if entry.decrypted else "encrypted"
        n = f"{entry.count} records, " if entry.count > 1 else ""
        return f"ApplicationData · {n}{entry.length} bytes {tail}"
    if entry.content_type == 21:
        if msg is None:
            return "Encrypted Alert" if entry.encrypted and not entry.decrypted else "Alert"
        lvl = alert_level_name(msg.level) if msg.level is not None else "?"
        desc = alert_description_name(msg.description) if msg.description is not None else "?"
        return f"Alert ({lvl}, {desc})" + (" · decrypted" if entry.decrypted else "")
    if entry.content_type == 26 and msg is not None:       # DTLS 1.3 ACK
        shown = ", ".join(f"{epoch}/{seq}" for epoch, seq in msg[:6]) + (" …" if len(msg) > 6 else "")
        return f"ACK · records {shown or 'none'} (epoch/sequence)" + (" · decrypted" if entry.decrypted else "")
    if msg is None:
        if entry.encrypted and not entry.decrypted:
            return f"{name} · {entry.length} bytes"
        return name
    t = type(msg).__name__
    if t == "ClientHello":
        parts.append(f"legacy {version_name(msg.legacy_version)}")
        sv = [v for v in hello.supported_versions(msg)]
        if sv:
            parts.append("versions " + _names(sv, version_name, 3))
        sni = hello.server_name(msg)
        if sni:
            parts.append(f"SNI {sni}")
        parts.append(f"{len(msg.cipher_suites)} suites")
        parts.append(f"{len(msg.extensions)} extensions")
        alpn = hello.alpn_text(hello.alpn_protocols(msg))
        if alpn:
            parts.append("ALPN " + ",".join(alpn))
    elif t == "ServerHello":
        parts.append(version_name(msg.selected_version))
        parts.append(cipher_suite_name(msg.cipher_suite))
        g = hello.key_share_group(msg)
        if g is not None:
            parts.append(("asks for " if msg.is_hello_retry_request else "") + group_name(g))
        if msg.downgrade_sentinel:
            parts.append(f"DOWNGRADE SENTINEL ({msg.downgrade_sentinel})")
    elif t == "Certificate":
        n = len(msg.certificate_list)
        parts.append(f"{n} certificate{'s' if n != 1 else ''}")
        if n:
            from ..tls.x509info import parse_certificate
            parts.append(parse_certificate(msg.certificate_list[0].cert_data).subject or "(empty subject)")
    elif t == "ServerKeyExchange":
        curve = getattr(msg, "named_curve", None)
        if curve is not None:
            parts.append(f"ECDHE {group_name(curve)}")
        p_bits = getattr(msg, "p_bits", None)
        if p_bits:
            parts.append(f"DHE {p_bits}-bit group")
        alg = getattr(msg, "signature_algorithm", None)
        if alg is not None:
            parts.append(signature_scheme_name(alg))
    elif t == "CertificateRequest":
        cas = getattr(msg, "certificate_authorities", None) or ()
        if cas:
            parts.append("CAs: " + "; ".join((dn.rfc4514 or dn.der.hex()[:16]) for dn in cas[:3])
                         + (f" (+{len(cas) - 3})" if len(cas) > 3 else ""))
        else:
            parts.append("any CA")
    elif t == "ClientKeyExchange":
        if getattr(msg, "encrypted_pre_master_secret", None):
            parts.append(f"RSA-encrypted premaster ({len(msg.encrypted_pre_master_secret)} bytes)")
        elif getattr(msg, "ecdh_Yc", None):
            parts.append(f"ECDHE public key ({len(msg.ecdh_Yc)} bytes)")
        elif getattr(msg, "dh_Yc", None):
            parts.append(f"DHE public value ({len(msg.dh_Yc) * 8} bits)")
        if getattr(msg, "psk_identity", None):
            parts.append(f"PSK identity {msg.psk_identity!r}")
    elif t == "CertificateVerify":
        if msg.algorithm is not None:
            parts.append(signature_scheme_name(msg.algorithm))
    elif t == "NewSessionTicket":
        life = getattr(msg, "ticket_lifetime", None) or getattr(msg, "ticket_lifetime_hint", None)
        if life is not None:
            parts.append(f"lifetime {life}s")
    elif t == "EncryptedExtensions":
        alpn = hello.alpn_text(hello.alpn_protocols(msg))
        if alpn:
            parts.append("ALPN " + ",".join(alpn))
        parts.append(f"{len(msg.extensions)} extensions")
    if entry.decrypted:
        parts.append("decrypted")
    return " · ".join(parts)


def certificate_line(info) -> str:
    key = info.public_key_type + (f" {info.public_key_bits}" if info.public_key_bits else "")
    if info.curve:
        key += f" {info.curve}"
    bits = [info.subject or "(empty subject)", f"issuer {info.issuer or '(empty)'}", key,
            info.signature_algorithm, f"valid {info.not_before[:10]} → {info.not_after[:10]}"]
    if info.san_dns or info.san_ip:
        bits.append("SAN " + ",".join(list(info.san_dns)[:4] + list(info.san_ip)[:2]))
    if info.error:
        bits.append(f"PARSE ERROR: {info.error}")
    return " · ".join(bits)


def quic_version_name(version: int) -> str:
    return {1: "QUIC v1", 0x6B3343CF: "QUIC v2"}.get(version, f"QUIC 0x{version:08x}")


def connection_facts(r) -> list[str]:
    """The negotiated facts of a connection, as the text view and the ladder show them."""
    facts = [version_name(r.version) if r.version is not None else "no ServerHello"]
    quic = getattr(r, "quic", None)
    if quic is not None:
        facts.insert(0, quic_version_name(quic["version"]))
    if r.cipher_suite is not None:
        facts.append(cipher_suite_name(r.cipher_suite))
    if r.group is not None:
        facts.append(group_name(r.group))
    if r.alpn:
        facts.append(f"ALPN {r.alpn}")
    facts.append("resumed" if r.resumed else "full handshake")
    if r.hello_retry_request is not None:
        facts.append("HelloRetryRequest")
    if not r.handshake_complete:
        facts.append("not completed")
    if r.client_certificate_requested:
        sent = r.client_certificate_sent
        facts.append("client cert requested, " + ("sent" if sent else "not visible" if sent is None else "NOT sent"))
    elif r.client_certificate_sent:
        facts.append("client cert sent")
    elif r.client_certificate_requested is None:
        facts.append("client cert: not visible without keys")
    return facts

