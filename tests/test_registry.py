"""Registries: generated IANA tables, hand-written RFC tables, cipher-suite attributes."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tlsscope.registry as reg
from tlsscope.registry import _iana, protocol

ROOT = Path(__file__).resolve().parents[1]
IANA_DIR = ROOT.parent / "shared" / "iana"
GENERATED = ROOT / "src" / "tlsscope" / "registry" / "_iana.py"


def _need_iana() -> Path:
    if not (IANA_DIR / "tls-parameters-4.csv").is_file():
        pytest.skip(f"IANA CSVs not found at {IANA_DIR}")
    return IANA_DIR


def _iana_suites() -> dict[int, str]:
    """Single assigned cipher suites, read from the CSV independently of the generator."""
    rows = {}
    with (_need_iana() / "tls-parameters-4.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            m = re.fullmatch(r"0x([0-9A-F]{2}),0x([0-9A-F]{2})", row["Value"])
            if m and row["Description"].startswith("TLS_"):
                rows[int(m[1] + m[2], 16)] = row["Description"]
    return rows


# --- generated module -------------------------------------------------------

def test_generator_is_deterministic_and_committed_module_is_current(tmp_path):
    _need_iana()
    outs = []
    for i in range(2):
        out = tmp_path / f"_iana{i}.py"
        subprocess.run(
            [sys.executable, str(ROOT / "tools" / "gen_registries.py"), "--iana-dir", str(IANA_DIR), "--out", str(out)],
            check=True, timeout=60,
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] == GENERATED.read_bytes(), "re-run tools/gen_registries.py"


def test_generated_module_header_names_sources_and_generator():
    head = GENERATED.read_text().split('"""')[1]
    assert "tools/gen_registries.py" in head
    for name in ("tls-parameters-4.csv", "tls-parameters-7.csv", "tls-extensiontype-values-1.csv",
                 "tls-parameters-8.csv", "tls-signaturescheme.csv"):
        assert name in head


def test_generated_tables_are_plain_int_str_dicts():
    for table in (_iana.CIPHER_SUITES, _iana.HANDSHAKE_TYPES, _iana.EXTENSION_TYPES,
                  _iana.SUPPORTED_GROUPS, _iana.SIGNATURE_SCHEMES):
        assert type(table) is dict and table
        assert all(type(k) is int and type(v) is str for k, v in table.items())
        assert list(table) == sorted(table)


def test_every_iana_cipher_suite_is_in_the_table():
    suites = _iana_suites()
    assert len(suites) > 330
    for code, name in suites.items():
        assert reg.cipher_suite_name(code) == name


# --- names ----------------------------------------------------------------

@pytest.mark.parametrize(("func", "code", "expected"), [
    (reg.cipher_suite_name, 0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    (reg.cipher_suite_name, 0x1301, "TLS_AES_128_GCM_SHA256"),
    (reg.cipher_suite_name, 0x0A0A, "GREASE (0x0a0a)"),
    (reg.cipher_suite_name, 0xFAFA, "GREASE (0xfafa)"),
    (reg.cipher_suite_name, 0x1234, "unknown (0x1234)"),
    (reg.cipher_suite_name, 0xCC13, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD"),
    (reg.extension_name, 0, "server_name"),
    (reg.extension_name, 10, "supported_groups"),
    (reg.extension_name, 35, "session_ticket"),
    (reg.extension_name, 43, "supported_versions"),
    (reg.extension_name, 65281, "renegotiation_info"),
    (reg.extension_name, 65037, "encrypted_client_hello"),
    (reg.extension_name, 17513, "application_settings_old"),
    (reg.extension_name, 17613, "application_settings"),
    (reg.extension_name, 13172, "next_protocol_negotiation"),
    (reg.extension_name, 30032, "channel_id"),
    (reg.extension_name, 0x1A1A, "GREASE (0x1a1a)"),
    (reg.extension_name, 60, "unknown (0x003c)"),
    (reg.group_name, 23, "secp256r1"),
    (reg.group_name, 29, "x25519"),
    (reg.group_name, 256, "ffdhe2048"),
    (reg.group_name, 4588, "X25519MLKEM768"),
    (reg.group_name, 25497, "X25519Kyber768Draft00"),
    (reg.group_name, 0x2A2A, "GREASE (0x2a2a)"),
    (reg.signature_scheme_name, 0x0804, "rsa_pss_rsae_sha256"),
    (reg.signature_scheme_name, 0x0403, "ecdsa_secp256r1_sha256"),
    (reg.signature_scheme_name, 0x0807, "ed25519"),
    (reg.signature_scheme_name, 0x0201, "rsa_pkcs1_sha1"),
    (reg.signature_scheme_name, 0x0303, "ecdsa_sha224"),  # TLS 1.2 pair, no 1.3 name
    (reg.signature_scheme_name, 0x0402, "dsa_sha256"),
    (reg.signature_scheme_name, 0x0A0A, "GREASE (0x0a0a)"),
    (reg.signature_scheme_name, 0xFE00, "unknown (0xfe00)"),
    (reg.handshake_type_name, 1, "client_hello"),
    (reg.handshake_type_name, 4, "new_session_ticket"),
    (reg.handshake_type_name, 12, "server_key_exchange"),
    (reg.handshake_type_name, 14, "server_hello_done"),
    (reg.handshake_type_name, 25, "compressed_certificate"),
    (reg.handshake_type_name, 254, "message_hash"),
    (reg.handshake_type_name, 99, "unknown (0x63)"),
    (reg.content_type_name, 22, "handshake"),
    (reg.content_type_name, 25, "tls12_cid"),
    (reg.content_type_name, 99, "unknown (0x63)"),
    (reg.alert_level_name, 2, "fatal"),
    (reg.alert_description_name, 0, "close_notify"),
    (reg.alert_description_name, 21, "decryption_failed_RESERVED"),
    (reg.alert_description_name, 41, "no_certificate_RESERVED"),
    (reg.alert_description_name, 60, "export_restriction_RESERVED"),
    (reg.alert_description_name, 86, "inappropriate_fallback"),
    (reg.alert_description_name, 116, "certificate_required"),
    (reg.alert_description_name, 120, "no_application_protocol"),
    (reg.compression_method_name, 0, "null"),
    (reg.compression_method_name, 1, "DEFLATE"),
    (reg.compression_method_name, 64, "LZS"),
    (reg.ec_point_format_name, 0, "uncompressed"),
    (reg.psk_key_exchange_mode_name, 1, "psk_dhe_ke"),
    (reg.psk_key_exchange_mode_name, 0x0B, "GREASE (0x0b)"),
    (reg.cert_compression_algorithm_name, 2, "brotli"),
    (reg.cert_compression_algorithm_name, 3, "zstd"),
    (reg.client_certificate_type_name, 64, "ecdsa_sign"),
    (reg.client_certificate_type_name, 66, "ecdsa_fixed_ecdh"),
    (reg.certificate_status_type_name, 1, "ocsp"),
    (reg.heartbeat_mode_name, 1, "peer_allowed_to_send"),
    (reg.name_type_name, 0, "host_name"),
    (reg.version_name, 0x0002, "SSL 2.0"),
    (reg.version_name, 0x0300, "SSL 3.0"),
    (reg.version_name, 0x0301, "TLS 1.0"),
    (reg.version_name, 0x0303, "TLS 1.2"),
    (reg.version_name, 0x0304, "TLS 1.3"),
    (reg.version_name, 0x7F17, "TLS 1.3 (draft 23)"),
    (reg.version_name, 0xFB1A, "TLS 1.3 (Facebook draft 26)"),
    (reg.version_name, 0xFEFD, "DTLS 1.2"),
    (reg.version_name, 0xFEFC, "DTLS 1.3"),
    (reg.version_name, 0x3A3A, "GREASE (0x3a3a)"),
    (reg.version_name, 0x0305, "unknown (0x0305)"),
])
def test_names(func, code, expected):
    assert func(code) == expected


def test_csv_spot_checks_for_every_generated_table():
    _need_iana()
    checks = {
        "tls-parameters-7.csv": (reg.handshake_type_name, {"2": "server_hello", "24": "key_update"}),
        "tls-extensiontype-values-1.csv": (reg.extension_name, {"16": "application_layer_protocol_negotiation",
                                                                 "51": "key_share"}),
        "tls-parameters-8.csv": (reg.group_name, {"24": "secp384r1", "30": "x448"}),
        "tls-signaturescheme.csv": (reg.signature_scheme_name, {"0x0808": "ed448", "0x0603": "ecdsa_secp521r1_sha512"}),
    }
    for filename, (func, expected) in checks.items():
        with (IANA_DIR / filename).open(newline="") as fh:
            rows = {row[0]: row[1] for row in csv.reader(fh)}
        for value, name in expected.items():
            assert rows[value] == name
            assert func(int(value, 0)) == name


def test_is_grease():
    grease = [v for v in range(0x10000) if reg.is_grease(v)]
    assert grease == [0x0A0A + 0x1010 * i for i in range(16)]
    assert not reg.is_grease(0x0A0B) and not reg.is_grease(0x1A0A) and not reg.is_grease(-1)
    assert [v for v in range(0x100) if reg.is_grease_u8(v)] == [0x0B + 0x1F * i for i in range(8)]


def test_every_name_function_returns_a_string_for_any_code():
    funcs = [getattr(reg, n) for n in reg.__all__ if n.endswith("_name")]
    assert len(funcs) == 17
    for func in funcs:
        for code in (0, 1, 0xFF, 0x100, 0x0A0A, 0xFFFF):
            assert isinstance(func(code), str) and func(code)


def test_hand_written_tables_do_not_shadow_iana():
    assert not set(protocol.EXTRA_EXTENSION_TYPES) & set(_iana.EXTENSION_TYPES)
    assert not set(protocol.EXTRA_CIPHER_SUITES) & set(_iana.CIPHER_SUITES)
    assert not set(protocol.EXTRA_SUPPORTED_GROUPS) & set(_iana.SUPPORTED_GROUPS)
    assert not set(protocol.EXTRA_SIGNATURE_SCHEMES) & set(_iana.SIGNATURE_SCHEMES)


# --- cipher suite attributes ------------------------------------------------

def test_every_known_suite_has_consistent_info():
    for code, name in reg.CIPHER_SUITES.items():
        info = reg.cipher_suite_info(code)
        assert info is not None, name
        assert (info.code, info.name) == (code, name)
        assert info.aead == (info.mac is None and not info.signaling), name
        assert info.aead == (info.mode in ("GCM", "CCM", "CCM_8", "POLY1305", "MGM")), name
        assert info.null_cipher == (info.key_bits == 0 and not info.signaling), name
        assert info.export == ("EXPORT" in name), name
        assert info.anonymous == ("_anon_" in name), name
        assert info.rc4 == ("_RC4_" in name), name
        assert info.des == bool(re.search(r"_(3?DES(40)?)_", name)), name
        assert info.tls13 == (info.key_exchange == "TLS13"), name
        assert info.prf_hash in ("sha256", "sha384", "sm3", "streebog256"), name
        if info.export:
            assert info.key_bits in (40, 56), name
        if name.endswith("_SHA384") and not info.tls13:
            assert info.prf_hash == "sha384"


def test_suite_info_none_for_grease_and_unknown():
    assert reg.cipher_suite_info(0x0A0A) is None
    assert reg.cipher_suite_info(0x1234) is None


def test_forward_secrecy_count():
    suites = _iana_suites()
    expected = {c for c, n in suites.items()
                if re.match(r"TLS_(DHE|ECDHE|DH_anon|ECDH_anon|PSK_DHE|ECCPWD)_", n)}
    expected |= {c for c, n in suites.items() if "_WITH_" not in n and "SCSV" not in n}
    expected |= {0xC103, 0xC104, 0xC105, 0xC106}  # GOST TLS 1.3 (name has _WITH_)
    got = {c for c in suites if reg.cipher_suite_info(c).forward_secrecy}
    assert got == expected
    assert len(got) == 171  # 158 (EC)DHE/anon/ECCPWD + 13 TLS 1.3


def test_tls13_suites():
    tls13 = {c for c in reg.CIPHER_SUITES if reg.cipher_suite_info(c).tls13}
    assert {0x1301, 0x1302, 0x1303, 0x1304, 0x1305} <= tls13
    assert tls13 == {0x1301, 0x1302, 0x1303, 0x1304, 0x1305, 0x00C6, 0x00C7, 0xC0B4, 0xC0B5,
                     0xC103, 0xC104, 0xC105, 0xC106}
    i = reg.cipher_suite_info(0x1302)
    assert (i.cipher, i.key_bits, i.mode, i.prf_hash, i.aead, i.mac) == ("AES_256_GCM", 256, "GCM", "sha384", True, None)
    i = reg.cipher_suite_info(0x1303)
    assert (i.cipher, i.key_bits, i.mode) == ("CHACHA20_POLY1305", 256, "POLY1305")
    i = reg.cipher_suite_info(0x1305)
    assert (i.cipher, i.mode, i.key_exchange, i.authentication) == ("AES_128_CCM_8", "CCM_8", "TLS13", "TLS13")


@pytest.mark.parametrize(("code", "fields"), [
    (0xC02B, dict(key_exchange="ECDHE", authentication="ECDSA", cipher="AES_128_GCM", key_bits=128, mode="GCM",
                  mac=None, prf_hash="sha256", aead=True, forward_secrecy=True)),
    (0xC0AE, dict(key_exchange="ECDHE", authentication="ECDSA", cipher="AES_128_CCM_8", mode="CCM_8", mac=None)),
    (0x002F, dict(key_exchange="RSA", authentication="RSA", cipher="AES_128_CBC", mode="CBC", mac="SHA",
                  prf_hash="sha256", aead=False, forward_secrecy=False)),
    (0xC028, dict(key_exchange="ECDHE", cipher="AES_256_CBC", mac="SHA384", prf_hash="sha384")),
    (0x0003, dict(key_exchange="RSA", cipher="RC4_40", key_bits=40, mode="STREAM", mac="MD5", export=True, rc4=True)),
    (0x0006, dict(cipher="RC2_CBC_40", key_bits=40, export=True)),
    (0x0014, dict(key_exchange="DHE", authentication="RSA", cipher="DES40_CBC", key_bits=40, export=True, des=True)),
    (0x000A, dict(cipher="3DES_EDE_CBC", key_bits=168, des=True, export=False)),
    (0x0018, dict(key_exchange="DHE", authentication="anon", anonymous=True, rc4=True)),
    (0xC015, dict(key_exchange="ECDHE", authentication="anon", null_cipher=True, key_bits=0, mode="NULL")),
    (0x0031, dict(key_exchange="DH", authentication="RSA", forward_secrecy=False)),
    (0xC004, dict(key_exchange="ECDH", authentication="ECDSA", forward_secrecy=False)),
    (0x008C, dict(key_exchange="PSK", authentication="PSK")),
    (0xC0AA, dict(key_exchange="DHE_PSK", cipher="AES_128_CCM_8", forward_secrecy=True)),
    (0x0094, dict(key_exchange="RSA_PSK", authentication="RSA")),
    (0xCCAC, dict(key_exchange="ECDHE_PSK", cipher="CHACHA20_POLY1305", mode="POLY1305")),
    (0xC01B, dict(key_exchange="SRP", authentication="SRP_RSA")),
    (0x0020, dict(key_exchange="KRB5", authentication="KRB5", cipher="RC4_128")),
    (0x0096, dict(cipher="SEED_CBC", key_bits=128)),
    (0x0007, dict(cipher="IDEA_CBC", key_bits=128)),
    (0xC05C, dict(cipher="ARIA_128_GCM", aead=True)),
    (0xC07B, dict(cipher="CAMELLIA_256_GCM", key_bits=256, prf_hash="sha384")),
    (0xC09C, dict(cipher="AES_128_CCM", mode="CCM", mac=None, prf_hash="sha256")),
    (0x0000, dict(key_exchange="NULL", authentication="NULL", cipher="NULL", null_cipher=True, mac="NULL")),
    (0x0062, dict(cipher="DES_CBC", key_bits=56, export=True, des=True)),  # EXPORT1024 draft suite
    (0x00FF, dict(signaling=True, null_cipher=False, aead=False)),
    (0x5600, dict(signaling=True, null_cipher=False)),
    (0xC0B4, dict(tls13=True, null_cipher=True, mac="SHA256", aead=False)),
])
def test_suite_info_fields(code, fields):
    info = reg.cipher_suite_info(code)
    assert {k: getattr(info, k) for k in fields} == fields


def test_signaling_and_scsv_constants():
    assert reg.TLS_FALLBACK_SCSV == 0x5600 and reg.TLS_EMPTY_RENEGOTIATION_INFO_SCSV == 0x00FF
    assert {c for c in reg.CIPHER_SUITES if reg.cipher_suite_info(c).signaling} == {0x00FF, 0x5600}


def test_export_suites_all_flagged():
    exports = [c for c, n in _iana_suites().items() if "EXPORT" in n]
    assert len(exports) == 15
    assert all(reg.cipher_suite_info(c).export for c in exports)


def test_info_is_frozen_slots_dataclass():
    info = reg.cipher_suite_info(0x1301)
    with pytest.raises(AttributeError):
        info.key_bits = 1  # type: ignore[misc]
    assert not hasattr(info, "__dict__")
