"""The engine against real OpenSSL handshakes (Python's ``ssl`` over memory BIOs).

Each test runs a client and a server in memory, records the bytes each side
wrote (whole records, in wire order) and the client's SSLKEYLOGFILE, then
replays them through ``ConnectionDecryptor`` the way the connection state
machine will: handshake messages reassembled and observed, CCS observed,
protected records decrypted.  The application data must come out as sent and
both Finished messages must verify.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tlsscope.decrypt import ConnectionDecryptor, Decrypted, DecryptFailure, KeyLog, RsaKeys

pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")

OP_NO_EXTENDED_MASTER_SECRET = 0x1      # OpenSSL 3 SSL_OP_* values (not exported by ssl)
OP_NO_ENCRYPT_THEN_MAC = 1 << 19

CLIENT_DATA = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"a" * 3000, b"second request", b"z" * 17]
SERVER_DATA = [b"HTTP/1.1 200 OK\r\n\r\n", b"b" * 20000, b"bye"]


@pytest.fixture(scope="module")
def server_files(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("pki")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tlsscope-test")])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=36500))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = d / "cert.pem", d / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Capture:
    chunks: list[tuple[bool, bytes]] = field(default_factory=list)   # (from_client, bytes)
    keylog: bytes = b""
    cipher: str = ""
    version: str = ""
    session: object = None


_VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
             "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def run_tls(tmp_path: Path, server_files, version: str, ciphers: str = "ALL:@SECLEVEL=0",
            options: int = 0, session=None, server_ctx=None, client_ctx=None) -> Capture:
    cert, key = server_files
    if server_ctx is None:
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)
        server_ctx.set_ciphers(ciphers)
        server_ctx.minimum_version = server_ctx.maximum_version = _VERSIONS[version]
        server_ctx.options |= options
    if client_ctx is None:
        client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_NONE
        client_ctx.set_ciphers(ciphers)
        client_ctx.minimum_version = client_ctx.maximum_version = _VERSIONS[version]
        client_ctx.options |= options
    keylog_path = tmp_path / f"keys{len(list(tmp_path.iterdir()))}.txt"
    client_ctx.keylog_filename = str(keylog_path)

    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="tlsscope-test", session=session)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    cap = Capture()

    def pump() -> bool:
        moved = False
        for from_client, out, peer_in in ((True, c_out, s_in), (False, s_out, c_in)):
            data = out.read()
            if data:
                cap.chunks.append((from_client, data))
                peer_in.write(data)
                moved = True
        return moved

    def step(obj, fn) -> None:
        try:
            fn()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass

    done = [False, False]

    def hs(i, obj):
        obj.do_handshake()
        done[i] = True

    for _ in range(50):
        if not done[0]:
            step(client, lambda: hs(0, client))
        if not done[1]:
            step(server, lambda: hs(1, server))
        if not pump() and all(done):
            break
    assert all(done), "handshake did not complete"

    def read_all(obj, n):
        got = b""
        for _ in range(200):
            pump()
            try:
                got += obj.read(65536)
            except ssl.SSLWantReadError:
                pass
            if len(got) >= n:
                return got
        raise AssertionError("data did not arrive")

    for data in CLIENT_DATA:
        client.write(data)
        pump()
        assert read_all(server, len(data)) == data
    for data in SERVER_DATA:
        server.write(data)
        pump()
        assert read_all(client, len(data)) == data
    step(client, client.unwrap)
    pump()
    step(server, server.unwrap)
    pump()
    cap.keylog = keylog_path.read_bytes()
    cap.cipher = client.cipher()[0]
    cap.version = client.version()
    cap.session = client.session
    return cap


@dataclass
class Replay:
    app: dict[bool, bytes]
    failures: list[DecryptFailure]
    handshake_types: dict[bool, list[int]]
    dec: ConnectionDecryptor


def replay(cap: Capture, keylog: KeyLog, rsa_keys: RsaKeys | None = None) -> Replay:
    """A minimal connection state machine around the engine."""
    dec = ConnectionDecryptor(keylog, rsa_keys)
    app = {True: b"", False: b""}
    hs_buf = {True: b"", False: b""}
    hs_types: dict[bool, list[int]] = {True: [], False: []}
    ccs = {True: False, False: False}
    failures = []
    for from_client, chunk in cap.chunks:
        while chunk:
            content_type, version = chunk[0], int.from_bytes(chunk[1:3], "big")
            n = int.from_bytes(chunk[3:5], "big")
            fragment, chunk = chunk[5:5 + n], chunk[5 + n:]
            if content_type == 20:
                dec.observe_change_cipher_spec(from_client)
                ccs[from_client] = True
                continue
            if content_type == 23 or ccs[from_client]:
                result = dec.decrypt(from_client, content_type, version, fragment)
                if isinstance(result, DecryptFailure):
                    failures.append(result)
                    continue
                if isinstance(result, Decrypted):
                    content_type, fragment = result.content_type, result.plaintext
            if content_type == 22:
                hs_buf[from_client] += fragment
                buf = hs_buf[from_client]
                while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[1:4], "big"):
                    n = 4 + int.from_bytes(buf[1:4], "big")
                    dec.observe_handshake(from_client, buf[:n])
                    hs_types[from_client].append(buf[0])
                    buf = buf[n:]
                hs_buf[from_client] = buf
            elif content_type == 23:
                app[from_client] += fragment
    return Replay(app, failures, hs_types, dec)


def check_ok(r: Replay) -> None:
    assert r.failures == []
    assert r.app[True] == b"".join(CLIENT_DATA)
    assert r.app[False] == b"".join(SERVER_DATA)
    assert r.dec.finished_verified == {"client": True, "server": True}
    assert r.dec.status()["problems"] == []


CASES_12 = [
    ("1.2", "AES128-GCM-SHA256", 0),
    ("1.2", "AES256-GCM-SHA384", 0),
    ("1.2", "ECDHE-RSA-CHACHA20-POLY1305", 0),
    ("1.2", "AES128-CCM", 0),
    ("1.2", "AES256-CCM8", 0),
    ("1.2", "AES128-SHA", 0),                           # CBC with encrypt-then-MAC
    ("1.2", "AES128-SHA", OP_NO_ENCRYPT_THEN_MAC),      # CBC, MAC-then-encrypt
    ("1.2", "ECDHE-RSA-AES256-SHA384", OP_NO_ENCRYPT_THEN_MAC | OP_NO_EXTENDED_MASTER_SECRET),
    ("1.2", "AES256-SHA256", 0),
    ("1.2", "CAMELLIA128-SHA", OP_NO_ENCRYPT_THEN_MAC),
    ("1.2", "ECDHE-RSA-AES256-GCM-SHA384", OP_NO_EXTENDED_MASTER_SECRET),
    ("1.1", "AES256-SHA", OP_NO_ENCRYPT_THEN_MAC),
    ("1.0", "AES128-SHA", OP_NO_ENCRYPT_THEN_MAC),      # implicit IV chaining
    ("1.0", "ECDHE-RSA-AES128-SHA", 0),
]


@pytest.mark.parametrize("version,cipher,options", CASES_12)
def test_tls12_and_older_with_keylog(tmp_path, server_files, version, cipher, options):
    try:
        cap = run_tls(tmp_path, server_files, version, f"{cipher}:@SECLEVEL=0", options)
    except ssl.SSLError as exc:  # a local OpenSSL policy may forbid old versions
        pytest.skip(f"OpenSSL refused {version} {cipher}: {exc}")
    assert cap.cipher == cipher
    r = replay(cap, KeyLog.from_bytes(cap.keylog, "keys.txt"))
    check_ok(r)
    st = r.dec.status()
    assert st["method"] == "keylog" and st["keys_found"] == ["CLIENT_RANDOM"]
    assert st["records_decrypted"] >= len(CLIENT_DATA) + len(SERVER_DATA) + 2


def test_tls13_with_keylog(tmp_path, server_files):
    cap = run_tls(tmp_path, server_files, "1.3")
    r = replay(cap, KeyLog.from_bytes(cap.keylog))
    check_ok(r)
    assert r.handshake_types[False][:2] == [2, 8] and 4 in r.handshake_types[False]  # NewSessionTicket
    assert r.dec.status()["version"] == 0x0304


@pytest.mark.parametrize("options", [0, OP_NO_EXTENDED_MASTER_SECRET])
def test_rsa_private_key_decrypts_rsa_key_exchange(tmp_path, server_files, options):
    """--rsa-key: the premaster from ClientKeyExchange, with and without extended master secret."""
    cap = run_tls(tmp_path, server_files, "1.2", "AES128-SHA256:@SECLEVEL=0",
                  options | OP_NO_ENCRYPT_THEN_MAC)
    other = tmp_path / "other.pem"
    other.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    keys = RsaKeys.load([other, server_files[1]])          # a wrong key (DER) first
    assert len(keys) == 2 and keys.problems == []
    r = replay(cap, KeyLog(), keys)
    check_ok(r)
    assert r.dec.status()["method"] == "rsa"
    # without the key: a clear reason on every protected record
    r = replay(cap, KeyLog())
    assert r.failures and all(f.reason.startswith("no key for client random") for f in r.failures)
    assert r.dec.finished_verified == {"client": None, "server": None}


def test_keylog_rsa_line(tmp_path, server_files):
    cap = run_tls(tmp_path, server_files, "1.2", "AES256-GCM-SHA384:@SECLEVEL=0")
    # find ClientKeyExchange in the client's plaintext flight and decrypt it as a peer would
    key = serialization.load_pem_private_key(server_files[1].read_bytes(), None)
    flight = b"".join(c for fc, c in cap.chunks if fc)
    pos = flight.index(b"\x16\x03\x03", 10)
    while flight[pos + 5] != 16:
        pos += 5 + int.from_bytes(flight[pos + 3:pos + 5], "big")
    enc = flight[pos + 11:pos + 11 + int.from_bytes(flight[pos + 9:pos + 11], "big")]
    pms = key.decrypt(enc, padding.PKCS1v15())
    log = KeyLog.from_bytes(f"# RSA premaster\nRSA {enc[:8].hex()} {pms.hex()}\n".encode())
    assert log.rsa_premaster(enc[:8]) == pms and len(log) == 1
    check_ok(replay(cap, log))


def test_tls12_session_resumption(tmp_path, server_files):
    cert, key = server_files
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    first = run_tls(tmp_path, server_files, "1.2", server_ctx=server_ctx, client_ctx=client_ctx)
    second = run_tls(tmp_path, server_files, "1.2", session=first.session, server_ctx=server_ctx,
                     client_ctx=client_ctx)
    assert second.cipher == first.cipher
    log = KeyLog.from_bytes(first.keylog + second.keylog)
    r = replay(second, log)
    assert r.handshake_types[False][:1] == [2] and 11 not in r.handshake_types[False]  # abbreviated
    check_ok(r)


def test_wrong_master_secret_is_an_authentication_failure(tmp_path, server_files):
    cap = run_tls(tmp_path, server_files, "1.2", "AES128-SHA:@SECLEVEL=0", OP_NO_ENCRYPT_THEN_MAC)
    line = next(x for x in cap.keylog.splitlines() if x.startswith(b"CLIENT_RANDOM"))
    label, cr, secret = line.split()
    bad = bytes(b ^ 0xFF for b in bytes.fromhex(secret.decode()))
    r = replay(cap, KeyLog.from_bytes(b"CLIENT_RANDOM " + cr + b" " + bad.hex().encode()))
    assert r.failures and all("authentication failed" in f.reason for f in r.failures)
    assert r.dec.finished_verified == {"client": None, "server": None}
    assert r.dec.status()["failures"] == len(r.failures) and not r.dec.status()["used"]


def test_keys_added_after_the_records(tmp_path, server_files):
    """A DSB after the packets: the first records fail, later ones open (TLS 1.0 CBC chain kept)."""
    cap = run_tls(tmp_path, server_files, "1.0", "AES128-SHA:@SECLEVEL=0", OP_NO_ENCRYPT_THEN_MAC)
    dec = ConnectionDecryptor(KeyLog())
    ccs = {True: False, False: False}
    hs_buf = {True: b"", False: b""}
    opened = []
    records_seen = 0
    for from_client, chunk in cap.chunks:
        while chunk:
            ct, n = chunk[0], int.from_bytes(chunk[3:5], "big")
            frag, chunk = chunk[5:5 + n], chunk[5 + n:]
            if ct == 20:
                dec.observe_change_cipher_spec(from_client)
                ccs[from_client] = True
                continue
            if ccs[from_client]:
                records_seen += 1
                if records_seen == 4:
                    dec.add_keys(KeyLog.from_bytes(cap.keylog))
                res = dec.decrypt(from_client, ct, 0x0301, frag)
                opened.append(isinstance(res, Decrypted))
                continue
            if ct == 22:
                hs_buf[from_client] += frag
                buf = hs_buf[from_client]
                while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[1:4], "big"):
                    m = 4 + int.from_bytes(buf[1:4], "big")
                    dec.observe_handshake(from_client, buf[:m])
                    buf = buf[m:]
                hs_buf[from_client] = buf
    assert opened[:3] == [False, False, False] and all(opened[3:]) and len(opened) > 6


def test_client_certificate_with_extended_master_secret_and_rsa_key(tmp_path, server_files):
    """The session hash of RFC 7627 stops at ClientKeyExchange, before CertificateVerify."""
    cert, key = server_files
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.set_ciphers("AES128-GCM-SHA256")
    server_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cert)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client_ctx.set_ciphers("AES128-GCM-SHA256")
    client_ctx.load_cert_chain(cert, key)
    cap = run_tls(tmp_path, server_files, "1.2", server_ctx=server_ctx, client_ctx=client_ctx)
    r = replay(cap, KeyLog(), RsaKeys.load([key]))
    assert 15 in r.handshake_types[True]             # CertificateVerify after ClientKeyExchange
    check_ok(r)
