"""The engine over the public corpus captures, with tshark as the oracle.

tshark does the TCP reassembly (``-z follow,tcp,raw``); a minimal record walk
(this file's ``replay``, standing in for the connection state machine) feeds the
engine.  Every TLS connection must open with no failure and both Finished must
verify; where tshark decrypts with the same key log (``-z follow,tls,raw``) the
application data must be byte-identical.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import need_corpus, need_tool
from tlsscope.decrypt import ConnectionDecryptor, Decrypted, DecryptFailure, KeyLog, RsaKeys


def _tshark(args: list[str]) -> str:
    tshark = need_tool("tshark")
    out = subprocess.run([tshark, *args], capture_output=True, text=True, timeout=120)
    return out.stdout


def _follow(pcap: Path, kind: str, extra: list[str] = ()) -> dict[int, list[tuple[bool, bytes]]]:
    """{tcp stream: [(first-node side?, bytes)]} from one tshark run."""
    ids = sorted({int(s) for s in _tshark(["-r", str(pcap), "-T", "fields", "-e", "tcp.stream",
                                           "-Y", "tcp.len>0"]).split()})
    args = ["-r", str(pcap), "-q", *extra]
    for i in ids:
        args += ["-z", f"follow,{kind},raw,{i}"]
    streams: dict[int, list[tuple[bool, bytes]]] = {}
    current = None
    for line in _tshark(args).splitlines():
        if line.startswith("Filter: tcp.stream eq "):
            current = int(line.split()[-1])
            streams[current] = []
        elif current is not None and line.strip() and not line.startswith(("=", "Node ", "Follow", "Filter")):
            streams[current].append((not line.startswith("\t"), bytes.fromhex(line.strip())))
    return streams


@dataclass
class Result:
    dec: ConnectionDecryptor
    app: dict[bool, bytes] = field(default_factory=lambda: {True: b"", False: b""})
    failures: list[str] = field(default_factory=list)


def replay(chunks: list[tuple[bool, bytes]], keylog: KeyLog, rsa: RsaKeys | None,
           late_keys: tuple[int, KeyLog] | None = None) -> Result:
    """``late_keys=(n, log)``: the key log arrives after n protected records."""
    res = Result(ConnectionDecryptor(keylog, rsa))
    dec = res.dec
    protected = 0
    buf = {True: b"", False: b""}
    hs = {True: b"", False: b""}
    ccs = {True: False, False: False}
    first = True
    for from_client, data in chunks:
        b = buf[from_client] + data
        while True:
            if first and from_client and len(b) >= 2 and b[0] & 0x80:   # SSLv2-format hello
                n = ((b[0] & 0x7F) << 8) | b[1]
                if len(b) < 2 + n:
                    break
                dec.observe_sslv2_client_hello(b[2:2 + n])
                b, first = b[2 + n:], False
                continue
            if len(b) < 5 or len(b) < 5 + int.from_bytes(b[3:5], "big"):
                break
            n = int.from_bytes(b[3:5], "big")
            ct, version, frag, b = b[0], int.from_bytes(b[1:3], "big"), b[5:5 + n], b[5 + n:]
            first = False
            if ct == 23 or ccs[from_client]:
                protected += 1
                if late_keys and protected == late_keys[0] + 1:
                    dec.add_keys(late_keys[1])
                r = dec.decrypt(from_client, ct, version, frag)
                if isinstance(r, DecryptFailure):
                    res.failures.append(r.reason)
                    continue
                if isinstance(r, Decrypted):
                    ct, frag = r.content_type, r.plaintext
            if ct == 20:
                dec.observe_change_cipher_spec(from_client)
                ccs[from_client] = True
            elif ct == 22:
                h = hs[from_client] + frag
                while len(h) >= 4 and len(h) >= 4 + int.from_bytes(h[1:4], "big"):
                    m = 4 + int.from_bytes(h[1:4], "big")
                    dec.observe_handshake(from_client, h[:m])
                    h = h[m:]
                hs[from_client] = h
            elif ct == 23:
                res.app[from_client] += frag
        buf[from_client] = b
    return res


# (capture, keys, TLS connections expected, compare application data with tshark)
CASES = [
    ("syncsynchalt_illustrated-tls13/captures/capture.pcap", ["syncsynchalt_illustrated-tls13/captures/keylog.txt"], 1, True),
    ("syncsynchalt_illustrated-tls12/captures/capture.pcap", ["syncsynchalt_illustrated-tls12/captures/keylog.txt"], 1, True),
    ("secdev_scapy/doc/notebooks/tls/raw_data/tls_nss_example.pcap",
     ["secdev_scapy/doc/notebooks/tls/raw_data/tls_nss_example.keys.txt"], 2, True),
    *[(f"adulau_ssldump/samples/{name}.pcap", ["adulau_ssldump/samples/log.txt"], 1, True)
      for name in ("tls1.2_aes256", "tls1.3_aes128", "tls1.3_aes256gcm", "tls1.3_ccm", "tls1.3_ccm8",
                   "tls1.3_chacha", "tls1.3_curl_google", "tls1.3_keyupdates_aes256",
                   "tls1.3_session_resumption")],
    # 73 TLS 1.2 suites (AES, Camellia, SEED, IDEA, 3DES, DES, DES40 export, RC4), DEFLATE compression
    ("Lekensteyn_wireshark-notes/all/dump.pcapng", ["Lekensteyn_wireshark-notes/all/premaster.txt"], 73, True),
    # SSL 3.0 with 39 suites incl. RC4_40/RC2_40 export
    ("Lekensteyn_wireshark-notes/ssl3/dump.pcapng", ["Lekensteyn_wireshark-notes/ssl3/premaster.txt"], 39, True),
    ("Lekensteyn_wireshark-notes/tls/all/dump.pcapng", ["Lekensteyn_wireshark-notes/tls/all/premaster.txt"], 39, True),
    # suites Wireshark could not decrypt when the capture was made
    ("Lekensteyn_wireshark-notes/tls/broken/dump.pcapng", ["Lekensteyn_wireshark-notes/tls/broken/premaster.txt"], 33, False),
    ("Lekensteyn_wireshark-notes/tls/works/dump.pcapng", ["Lekensteyn_wireshark-notes/tls/works/premaster.txt"], 6, True),
    # --rsa-key: SSLv2-format ClientHello, SSL 3.0, renegotiation, then a resumed session
    ("marshalyyx2000_wireshark/test/captures/rsasnakeoil2.pcap", ["marshalyyx2000_wireshark/test/keys/rsasnakeoil2.key"], 2, False),
    ("randolphcyg_gowireshark/pcaps/https.pcapng", ["randolphcyg_gowireshark/pcaps/https.key"], 1, False),
]


@pytest.mark.parametrize("capture,keys,expected,compare", CASES, ids=[c[0].split("/")[0] + ":" + c[0].split("/")[-1] for c in CASES])
def test_corpus_capture_decrypts(capture, keys, expected, compare):
    corpus = need_corpus()
    pcap = corpus / capture
    keylog, rsa = KeyLog(), None
    for key in keys:
        if key.endswith((".key", ".pem")):
            rsa = RsaKeys.load([corpus / key])
        else:
            keylog.merge(KeyLog.from_file(corpus / key))
    assert keylog.problems == []
    results = {}
    for stream, chunks in sorted(_follow(pcap, "tcp").items()):   # in capture order: the session cache
        res = replay(chunks, keylog, rsa)
        if res.dec.status()["version"] is not None:
            results[stream] = res
    assert len(results) == expected
    for stream, res in results.items():
        st = res.dec.status()
        assert res.failures == [], (stream, st, res.failures[:3])
        assert st["finished_verified"] == {"client": True, "server": True}, (stream, st)
        assert st["used"] and res.app[True] and res.app[False], (stream, st)
        assert st["method"] == ("rsa" if rsa else "keylog")
    if compare:
        oracle = _follow(pcap, "tls", ["-o", f"tls.keylog_file:{corpus / keys[0]}"])
        for stream, res in results.items():
            sides = oracle.get(stream, [])
            a = b"".join(d for first, d in sides if first)
            b = b"".join(d for first, d in sides if not first)
            assert sorted([a, b]) == sorted([res.app[True], res.app[False]]), stream


def test_keys_arriving_mid_connection_rc4_and_cbc():
    """A DSB after the packets / a growing key log file: records before the keys fail
    with "no key", later ones open (RC4 keystream and TLS 1.0 CBC IV chain caught up)."""
    corpus = need_corpus()
    keys = KeyLog.from_file(corpus / "Lekensteyn_wireshark-notes/tls/works/premaster.txt")
    names = set()
    for stream, chunks in sorted(_follow(corpus / "Lekensteyn_wireshark-notes/tls/works/dump.pcapng",
                                         "tcp").items()):
        res = replay(chunks, KeyLog(), None, late_keys=(3, keys))
        st = res.dec.status()
        names.add(st["cipher_suite"])
        assert len(res.failures) == 3 and all(f.startswith("no key for client random") for f in res.failures)
        assert st["records_decrypted"] >= 2 and res.app[False], (stream, st)
    assert {0x0003, 0x0004, 0x0005} <= names   # RC4_40 export, RC4_128 MD5 and SHA
