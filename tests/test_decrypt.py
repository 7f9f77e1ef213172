"""Decryption engine: PRF vectors, key log parsing, record protection, and the
illustrated TLS 1.2 / 1.3 exchanges record by record (tls12.xargs.org, tls13.xargs.org)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings, strategies as st

from conftest import need_corpus
from tlsscope.decrypt import ConnectionDecryptor, Decrypted, DecryptFailure, KeyLog, RsaKeys
from tlsscope.decrypt import ciphers, tls12, tls13

H = bytes.fromhex


# --- PRF -------------------------------------------------------------------------
def test_tls12_prf_sha256_vector():
    # the P_SHA256 vector posted to the TLS WG list (msg03416)
    out = tls12.prf(tls12.TLS12, "sha256", H("9bbe436ba940f017b17652849a71db35"), b"test label",
                    H("a0ba9f936cda311827a6f796ffd5198c"), 100)
    assert out == H("e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
                    "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
                    "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
                    "87347b66")


def test_tls12_prf_sha384_vector():
    out = tls12.prf(tls12.TLS12, "sha384", H("b80b733d6ceefcdc71566ea48e5567df"), b"test label",
                    H("cd665cf6a8447dd6ff8b27555edb7465"), 148)
    assert out[:32] == H("7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd")
    assert out[-16:] == H("6854308d5eaa3be85e0990703d73e56f")


def test_tls10_prf_md5_sha1_vector():
    out = tls12.prf(tls12.TLS10, "", b"\xab" * 48, b"PRF Testvector", b"\xcd" * 64, 104)
    assert out == H("d3d4d1e349b5d515044666d51de32bab258cb521b6b053463e354832fd976754"
                    "443bcf9a296519bc289abcbc1187e4ebd31e602353776c408aafb74cbc85eff6"
                    "9255f9788faa184cbb957a9819d84a5d7eb006eb459d3ae8de9810454b8b2d8f"
                    "1afbc655a8c9a013")


def test_hkdf_matches_rfc5869_case_1():
    prk = tls13.hkdf_extract("sha256", H("000102030405060708090a0b0c"), b"\x0b" * 22)
    assert prk == H("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
    okm = tls13.hkdf_expand("sha256", prk, H("f0f1f2f3f4f5f6f7f8f9"), 42)
    assert okm == H("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                    "34007208d5b887185865")


# --- key log -----------------------------------------------------------------------
CR1 = "aa" * 32
CR2 = "bb" * 32


def test_keylog_all_labels_and_several_randoms():
    text = "\n".join([
        "# comment", "",
        f"CLIENT_RANDOM {CR1} {'01' * 48}",
        f"CLIENT_EARLY_TRAFFIC_SECRET {CR2} {'02' * 32}",
        f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {CR2} {'03' * 32}",
        f"SERVER_HANDSHAKE_TRAFFIC_SECRET {CR2} {'04' * 32}",
        f"CLIENT_TRAFFIC_SECRET_0 {CR2} {'05' * 48}",
        f"SERVER_TRAFFIC_SECRET_0 {CR2} {'06' * 48}",
        f"EXPORTER_SECRET {CR2} {'07' * 32}",
        f"EARLY_EXPORTER_SECRET {CR2} {'08' * 32}",
        f"RSA 0102030405060708 {'09' * 48}",
        f"PMS_CLIENT_RANDOM {'cc' * 32} {'0a' * 48}",
        "   ",
    ])
    log = KeyLog.from_bytes(text.encode(), "keys.txt")
    assert log.problems == []
    assert len(log) == 10
    assert log.secrets_for(H(CR1)) == {"CLIENT_RANDOM": b"\x01" * 48}
    got = log.secrets_for(H(CR2))
    assert set(got) == {"CLIENT_EARLY_TRAFFIC_SECRET", "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                        "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0",
                        "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET", "EARLY_EXPORTER_SECRET"}
    assert got["SERVER_TRAFFIC_SECRET_0"] == b"\x06" * 48
    assert log.rsa_premaster(H("0102030405060708") + b"more ciphertext") == b"\x09" * 48
    assert log.rsa_premaster(b"\x00" * 8) is None
    assert log.secrets_for(b"\x00" * 32) == {}


def test_keylog_malformed_lines_are_reported_not_fatal():
    text = "\r\n".join([
        f"CLIENT_RANDOM {CR1} {'01' * 48}",
        f"FOO {CR1} {'01' * 48}",                      # 2: unknown label
        f"CLIENT_RANDOM {CR1[:-2]} {'01' * 48}",       # 3: short random
        f"CLIENT_RANDOM {CR2} {'01' * 47}",            # 4: short master secret
        f"CLIENT_RANDOM {CR2} zz{'01' * 47}",          # 5: not hex
        f"CLIENT_RANDOM {CR2}",                        # 6: missing value
        "RSA 0102 " + "00" * 48,                       # 7: short prefix
        f"SERVER_TRAFFIC_SECRET_0 {CR2} {'01' * 20}",  # 8: odd secret size
    ])
    log = KeyLog.from_bytes(text.encode(), "keys.txt")
    assert len(log) == 1
    assert [p.split(":")[1] for p in log.problems] == ["2", "3", "4", "5", "6", "7", "8"]
    assert log.problems[0] == "keys.txt:2: unknown label FOO"
    assert all(p.startswith("keys.txt:") for p in log.problems)


def test_keylog_problem_list_is_bounded():
    log = KeyLog.from_bytes(b"garbage line\n" * 5000, "big.txt")
    assert len(log) == 0 and len(log.problems) == 201
    assert log.problems[-1] == "big.txt: 4800 more malformed lines not listed"


def test_keylog_merge_and_conflicts(tmp_path):
    path = tmp_path / "sslkeys.log"
    path.write_text(f"CLIENT_RANDOM {CR1} {'01' * 48}\n")
    a = KeyLog.from_file(path)
    b = KeyLog()
    b.add_text(f"CLIENT_RANDOM {CR2} {'02' * 48}\nCLIENT_RANDOM {CR1} {'01' * 48}\n", "dsb")
    a.merge(b)
    assert len(a) == 2 and a.problems == []
    a.add_text(f"CLIENT_RANDOM {CR1} {'03' * 48}\n", "late")
    assert a.secrets_for(H(CR1))["CLIENT_RANDOM"] == b"\x03" * 48
    assert len(a.problems) == 1 and "replaced" in a.problems[0]


def test_rsa_keys_load_problems(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    keys = RsaKeys.load([bad, tmp_path / "missing.pem"])
    assert len(keys) == 0 and len(keys.problems) == 2
    assert keys.decrypt_premaster(b"\x00" * 256) is None


# --- record protection -------------------------------------------------------------
def test_tls13_record_padding_and_inner_type():
    spec = ciphers.CIPHERS["AES_128_GCM"]
    key, iv = b"k" * 16, b"i" * 12
    opener = ciphers.tls13_opener(spec, key, iv)
    header = b"\x17\x03\x03\x00\x1a"
    nonce = (int.from_bytes(iv, "big") ^ 5).to_bytes(12, "big")
    frag = AESGCM(key).encrypt(nonce, b"hi\x15" + b"\x00" * 7, header)
    assert opener.open(5, 23, 0x0303, frag) == (21, b"hi")
    with pytest.raises(ciphers.RecordAuthError):
        opener.open(6, 23, 0x0303, frag)           # wrong sequence number
    all_padding = AESGCM(key).encrypt(iv, b"\x00" * 10, header)
    with pytest.raises(ciphers.RecordAuthError, match="no content type"):
        opener.open(0, 23, 0x0303, all_padding)


def test_every_cipher_name_in_the_registry_is_mapped_or_known_unsupported():
    from tlsscope.registry import cipher_suite_info
    unsupported = {"ARIA_128_CBC", "ARIA_256_CBC", "ARIA_128_GCM", "ARIA_256_GCM", "CAMELLIA_128_GCM",
                   "CAMELLIA_256_GCM", "28147_CNT_IMIT", "KUZNYECHIK_CTR_OMAC", "KUZNYECHIK_MGM_L",
                   "KUZNYECHIK_MGM_S", "MAGMA_CTR_OMAC", "MAGMA_MGM_L", "MAGMA_MGM_S", "SM4_CCM",
                   "SM4_GCM"}
    for code in range(0x10000):
        info = cipher_suite_info(code)
        if info is not None and not info.signaling:
            assert info.cipher in ciphers.CIPHERS or info.cipher in unsupported, info


# --- illustrated TLS 1.3 / 1.2, record by record -------------------------------------
def _rec(path):
    data = path.read_bytes()
    return data[0], int.from_bytes(data[1:3], "big"), data[5:]


def test_illustrated_tls13_records():
    caps = need_corpus() / "syncsynchalt_illustrated-tls13/captures"
    c = caps / "caps"
    dec = ConnectionDecryptor(KeyLog.from_file(caps / "keylog.txt"))
    dec.observe_handshake(True, (c / "clienthello").read_bytes()[5:])
    dec.observe_change_cipher_spec(True)          # middlebox-compat CCS: ignored
    dec.observe_handshake(False, (c / "serverhello").read_bytes()[5:])
    flow = [("serverencextensions", "serverextensions", False),
            ("serverenccert", "servercert", False),
            ("serverenccertverify", "servercertverify", False),
            ("serverencfinished", "serverfinished", False),
            ("clientencfinished", "clientfinished", True),
            ("clientencdata", "clientdata", True),
            ("serverencticket1", "serverticket1", False),
            ("serverencticket2", "serverticket2", False),
            ("serverencdata", "serverdata", False)]
    for enc, plain, from_client in flow:
        res = dec.decrypt(from_client, *_rec(c / enc))
        assert isinstance(res, Decrypted), (enc, res)
        # the caps hold TLSInnerPlaintext: content then the content type byte
        assert res.plaintext + bytes([res.content_type]) == (c / plain).read_bytes(), enc
        if res.content_type == 22:
            dec.observe_handshake(from_client, res.plaintext)
    assert dec.finished_verified == {"client": True, "server": True}
    st = dec.status()
    assert (st["version"], st["cipher_suite"], st["records_decrypted"], st["failures"]) == (0x0304, 0x1302, 9, 0)


def test_illustrated_tls12_records():
    caps = need_corpus() / "syncsynchalt_illustrated-tls12/captures"
    c = caps / "caps"
    dec = ConnectionDecryptor(KeyLog.from_file(caps / "keylog.txt"))
    for name, from_client in [("clienthello", True), ("serverhello", False), ("servercert", False),
                              ("serverkeyexchange", False), ("serverhellodone", False),
                              ("clientkeyexchange", True)]:
        assert dec.decrypt(from_client, *_rec(c / name)) is None    # not encrypted yet
        dec.observe_handshake(from_client, (c / name).read_bytes()[5:])
    dec.observe_change_cipher_spec(True)
    fin = dec.decrypt(True, *_rec(c / "clientfinished"))
    assert fin == Decrypted(22, (c / "clientfinishedplain").read_bytes(), 0)
    dec.observe_handshake(True, fin.plaintext)
    assert dec.decrypt(False, *_rec(c / "serverfinished")) is None  # server CCS not seen yet
    dec.observe_change_cipher_spec(False)
    sfin = dec.decrypt(False, *_rec(c / "serverfinished"))
    dec.observe_handshake(False, sfin.plaintext)
    assert dec.finished_verified == {"client": True, "server": True}
    ping = dec.decrypt(True, *_rec(c / "clientdata"))
    pong = dec.decrypt(False, *_rec(c / "serverdata"))
    alert = dec.decrypt(True, *_rec(c / "clientalert"))
    assert (ping.plaintext, ping.record_number) == (b"ping", 1)
    assert (pong.plaintext, pong.record_number) == (b"pong", 1)
    assert (alert.content_type, alert.plaintext) == (21, b"\x01\x00")
    # the caps' "plain" files start with the content (MAC and padding follow)
    assert (c / "clientdataplain").read_bytes().startswith(ping.plaintext)
    st = dec.status()
    assert st["keys_found"] == ["CLIENT_RANDOM"] and st["method"] == "keylog"
    assert (st["version"], st["cipher_suite"]) == (0x0303, 0xC013)


def test_illustrated_tls12_wrong_and_missing_key():
    caps = need_corpus() / "syncsynchalt_illustrated-tls12/captures"
    c = caps / "caps"

    def run(keylog):
        dec = ConnectionDecryptor(keylog)
        for name, from_client in [("clienthello", True), ("serverhello", False), ("clientkeyexchange", True)]:
            dec.observe_handshake(from_client, (c / name).read_bytes()[5:])
        dec.observe_change_cipher_spec(True)
        return dec, [dec.decrypt(True, *_rec(c / n)) for n in ("clientfinished", "clientdata")]

    dec, results = run(KeyLog())
    assert all(isinstance(r, DecryptFailure) for r in results)
    assert results[0].reason.startswith(
        "no key for client random 0001020304050607")
    assert [r.record_number for r in results] == [0, 1]

    wrong = (caps / "keylog.txt").read_text().replace("916abf9d", "916abf9e")
    dec, results = run(KeyLog.from_bytes(wrong.encode()))
    assert all(isinstance(r, DecryptFailure) and "authentication failed" in r.reason for r in results)
    assert results[1].reason.startswith("authentication failed at client record 1")
    st = dec.status()
    assert st["failures"] == 2 and st["records_decrypted"] == 0 and st["used"] is False


def test_malformed_handshake_input_never_raises():
    dec = ConnectionDecryptor(KeyLog())
    dec.observe_handshake(True, b"\x01")
    dec.observe_handshake(True, b"\x01\x00\x00\x05\x03\x03")          # truncated ClientHello
    dec.observe_handshake(False, b"\x02\x00\x00\x02\x03\x03")
    dec.observe_sslv2_client_hello(b"\x01\x03")
    assert dec.decrypt(True, 23, 0x0303, b"\x00" * 40) is None
    assert len(dec.status()["problems"]) == 3


# --- robustness ------------------------------------------------------------------------

_OPS = st.lists(st.one_of(
    st.tuples(st.just("hs"), st.booleans(), st.sampled_from([0, 1, 2, 4, 5, 8, 11, 16, 20, 24]),
              st.binary(max_size=80)),
    st.tuples(st.just("ccs"), st.booleans()),
    st.tuples(st.just("rec"), st.booleans(), st.sampled_from([20, 21, 22, 23]), st.binary(max_size=80)),
    st.tuples(st.just("v2"), st.binary(max_size=60)),
), max_size=25)


@settings(max_examples=150, deadline=None)
@given(ops=_OPS, cut=st.integers(0, 300), tls13=st.booleans())
def test_engine_never_raises_on_arbitrary_input(ops, cut, tls13):
    base = need_corpus() / ("syncsynchalt_illustrated-tls13" if tls13 else "syncsynchalt_illustrated-tls12")
    c = base / "captures" / "caps"
    dec = ConnectionDecryptor(KeyLog.from_file(base / "captures" / "keylog.txt"))
    ch = (c / "clienthello").read_bytes()[5:]
    sh = (c / "serverhello").read_bytes()[5:]
    dec.observe_handshake(True, ch)
    dec.observe_handshake(False, sh[:cut] if cut < len(sh) else sh)   # truncated hellos too
    for op in ops:
        if op[0] == "hs":
            _, fc, t, body = op
            dec.observe_handshake(fc, bytes([t]) + len(body).to_bytes(3, "big") + body)
        elif op[0] == "ccs":
            dec.observe_change_cipher_spec(op[1])
        elif op[0] == "v2":
            dec.observe_sslv2_client_hello(b"\x01" + op[1])
        else:
            r = dec.decrypt(op[1], op[2], 0x0303, op[3])
            assert r is None or isinstance(r, (Decrypted, DecryptFailure))
    dec.add_keys(KeyLog())
    assert isinstance(dec.status(), dict)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.binary(min_size=32, max_size=32),
                       st.lists(st.sampled_from(["CLIENT_RANDOM", "CLIENT_TRAFFIC_SECRET_0",
                                                 "SERVER_HANDSHAKE_TRAFFIC_SECRET"]), min_size=1, max_size=3),
                       max_size=40),
       st.binary(min_size=32, max_size=32))
def test_keylog_freeze_keeps_every_lookup(entries, absent):
    """The frozen form (read -j) answers like the dict, and later additions still count."""
    lines = []
    for cr, labels in entries.items():
        for i, label in enumerate(labels):
            size = 48 if label == "CLIENT_RANDOM" else 32
            lines.append(f"{label} {cr.hex()} {(bytes([i + 1]) * size).hex()}")
    log = KeyLog()
    log.add_text("\n".join(lines))
    before = {cr: log.secrets_for(cr) for cr in entries}
    count = len(log)
    log.freeze()
    assert len(log) == count
    for cr, secrets in before.items():
        assert log.secrets_for(cr) == secrets
        for label, secret in secrets.items():
            assert log.secret(cr, label) == secret
    if absent not in entries:
        assert log.secrets_for(absent) == {} and log.secret(absent, "CLIENT_RANDOM") is None
        # after freezing: a new random, then a new label for a frozen random
        log.add_text(f"CLIENT_RANDOM {absent.hex()} {'ab' * 48}")
        assert log.secret(absent, "CLIENT_RANDOM") == bytes.fromhex("ab" * 48)
    for cr, secrets in before.items():
        if "EXPORTER_SECRET" not in secrets:
            log.add_text(f"EXPORTER_SECRET {cr.hex()} {'cd' * 32}")
            assert log.secrets_for(cr) == {**secrets, "EXPORTER_SECRET": bytes.fromhex("cd" * 32)}
        break
    merged = KeyLog()
    merged.merge(log)
    for cr in entries:
        assert merged.secrets_for(cr) == log.secrets_for(cr)
