"""QUIC connections through the whole pipeline: Datagrams in, ConnectionReports out.

The packets are built here (tests/test_quic.py's builders: real AEAD and header protection), so
every path is exercised on purpose: a handshake refused with a TLS alert in CONNECTION_CLOSE,
Handshake and 1-RTT packets counted, idle ageing on the shared capture clock, a full flow table,
JSON and summary output.
"""

from __future__ import annotations

import json

from test_pipeline_fuzz import CH as CLIENT_HELLO_RECORD
from test_quic import crypto_frame, long_packet, protect_initial, varint
from tlsscope.model import Datagram, Segment
from tlsscope.pipeline import Analyzer, Options, analyze
from tlsscope.quic import QUIC_V1
from tlsscope.render.lines import line_renderer

CH = CLIENT_HELLO_RECORD[5:]            # the handshake message without its record header
C, S = ("10.0.0.1", 50000), ("10.0.0.2", 443)


def _server_hello() -> bytes:
    exts = b"\x00\x2b\x00\x02\x03\x04" + b"\x00\x33\x00\x24\x00\x1d\x00\x20" + b"k" * 32
    body = b"\x03\x03" + b"r" * 32 + b"\x20" + b"S" * 32 + b"\x13\x01\x00" + len(exts).to_bytes(2, "big") + exts
    return b"\x02" + len(body).to_bytes(3, "big") + body


SH = _server_hello()


def dg(ts: float, frame: int, payload: bytes, to_server: bool = True, client=C, server=S) -> Datagram:
    a, b = (client, server) if to_server else (server, client)
    return Datagram(ts, frame, a[0], b[0], a[1], b[1], payload)


def initial(dcid: bytes, from_client: bool, pn: int, frames: bytes, scid: bytes = b"") -> bytes:
    return protect_initial(QUIC_V1, dcid, from_client, pn, frames, scid=scid, pad_to=1200 if from_client else 0)


def connection_close(code: int, reason: bytes = b"") -> bytes:
    return b"\x1c" + varint(code) + varint(6) + varint(len(reason)) + reason


def test_handshake_refused_with_a_tls_alert():
    odcid = bytes(range(8))
    items = [
        dg(1.0, 1, initial(odcid, True, 0, crypto_frame(0, CH), scid=b"cc")),
        # handshake_failure (40) as a QUIC CRYPTO_ERROR (0x100 + alert), RFC 9001 §4.8
        dg(1.1, 2, initial(odcid, False, 0, connection_close(0x100 + 40, b"no common suite"), scid=b"ss"),
           to_server=False),
    ]
    (r,) = list(analyze(items, Options()))
    assert r.transport == "quic" and r.quic["version"] == QUIC_V1 and r.quic["original_dcid"] == odcid.hex()
    assert r.quic["packets"]["client"]["initial"] == 1 and r.quic["packets"]["server"]["initial"] == 1
    assert r.sni == "example.com" and r.server_hello is None
    assert [(a.from_client, a.level, a.description) for a in r.alerts] == [(False, 2, 40)]
    assert r.end == "fatal alert handshake_failure from server"
    assert "alert_handshake_failure" in {f.code for f in r.findings}
    assert r.fingerprints["ja4"].startswith("q13d")
    j = json.loads(line_renderer("json")(r))
    assert j["transport"] == "quic" and j["quic"]["server_scid"] == b"ss".hex()
    assert "  QUIC  " in line_renderer("summary")(r)


def test_full_handshake_counted_and_completed():
    odcid = b"\x11" * 8
    hs = long_packet(QUIC_V1, "handshake", b"cc", b"ss", b"\x00" * 300)
    one_rtt = bytes([0x40]) + b"cc" + b"\x00" * 60
    items = [
        dg(1.0, 1, initial(odcid, True, 0, crypto_frame(0, CH[:100]), scid=b"cc")),
        dg(1.0, 2, initial(odcid, True, 1, crypto_frame(100, CH[100:]), scid=b"cc")),   # CH split in two
        dg(1.1, 3, initial(odcid, False, 0, crypto_frame(0, SH), scid=b"ss") + hs + hs, to_server=False),
        dg(1.2, 4, long_packet(QUIC_V1, "handshake", b"ss", b"cc", b"\x00" * 80) + one_rtt),
        dg(1.3, 5, one_rtt, to_server=False),
    ]
    (r,) = list(analyze(items, Options()))
    assert r.version == 0x0304 and r.cipher_suite == 0x1301 and r.sni == "example.com"
    assert r.quic["packets"]["server"]["handshake"] == 2 and r.quic["packets"]["client"]["1rtt"] == 1
    assert r.handshake_complete
    names = [e.name for e in r.timeline]
    assert names == ["ClientHello", "ServerHello", "QUIC Handshake packet", "QUIC Handshake packet",
                     "QUIC 1-RTT packet", "QUIC 1-RTT packet"]
    assert r.timeline[2].count == 2 and not r.timeline[2].from_client and r.timeline[3].from_client
    assert [e.from_client for e in r.timeline[4:]] == [True, False]
    assert not any(e.decrypted for e in r.timeline)        # no key log
    assert r.certificates["server"] is None          # in encrypted Handshake packets


def test_idle_connections_close_on_the_capture_clock():
    """A QUIC connection silent for longer than the idle timeout is reported when a later packet
    (here a TCP segment of another flow) moves the clock past an idle sweep."""
    an = Analyzer(Options())
    out = an.feed(dg(0.0, 1, initial(b"\x22" * 8, True, 0, crypto_frame(0, CH))))
    assert out == []
    syn = Segment(500.0, 2, "10.9.9.9", "10.9.9.8", 1234, 80, 1, 0, 0x02, b"")
    out = an.feed(syn)
    assert len(out) == 1 and out[0].transport == "quic" and out[0].end.startswith("idle timeout")
    assert an.finish() == []                      # the TCP flow has no TLS; nothing left open


def test_full_flow_table_evicts_the_oldest():
    an = Analyzer(Options())
    an.feed(dg(0.0, 1, initial(b"\x33" * 8, True, 0, crypto_frame(0, CH)), client=("10.0.0.5", 1000)))
    an._udp[0].max_flows = 1          # the QUIC table
    out = an.feed(dg(0.1, 2, initial(b"\x44" * 8, True, 0, crypto_frame(0, CH)), client=("10.0.0.6", 1001)))
    assert [r.client.port for r in out] == [1000] and out[0].end.startswith("evicted")
    rest = an.finish()
    assert [r.client.port for r in rest] == [1001] and rest[0].end.startswith("capture ended")
    assert [r.id for r in out + rest] == [1, 2]


def test_not_quic_and_undecryptable_first_packets_open_nothing():
    an = Analyzer(Options())
    # a Handshake packet of a connection whose start was not captured: nothing to read
    assert an.feed(dg(0.0, 1, long_packet(QUIC_V1, "handshake", b"cc", b"ss", b"\x00" * 40))) == []
    # an "Initial" whose payload does not decrypt (fake or damaged): no connection, no TLS
    fake = bytearray(initial(b"\x55" * 8, True, 0, crypto_frame(0, CH)))
    fake[-1] ^= 1
    assert an.feed(dg(0.1, 2, bytes(fake))) == []
    assert an.finish() == []
    assert an.stats.tls_connections == 0 and an.stats.datagrams == 2


# -- with the key log: Handshake and 1-RTT packets opened (corpus captures) -------------------------

def test_key_log_opens_handshake_and_1rtt_packets():
    from conftest import CORPUS, need_corpus
    import tlsscope
    need_corpus()
    d = CORPUS / "syncsynchalt_illustrated-quic/captures"
    (plain,) = list(tlsscope.read(d / "capture.pcap"))
    assert plain.certificates["server"] is None and plain.decryption is None and plain.alpn is None
    (r,) = list(tlsscope.read(d / "capture.pcap", keylog=str(d / "keylog.txt")))
    assert [c.subject for c in r.certificates["server"]] == ["CN=example.ulfheim.net,C=US"]
    assert r.alpn == "ping/1.0"                       # answered in EncryptedExtensions
    assert r.state.finished == {"client": True, "server": True} and r.handshake_complete
    decrypted = [e.name for e in r.timeline if e.decrypted and e.content_type == 22 and e.message is not None]
    assert decrypted == ["EncryptedExtensions", "Certificate", "CertificateVerify", "Finished", "Finished"]
    dec = r.decryption
    assert dec["failures"] == 0 and dec["records_decrypted"] >= 8 and len(dec["keys_found"]) == 4
    # both Finished check out over the CRYPTO streams' transcript (RFC 8446 §4.4.4)
    assert dec["finished_verified"] == {"client": True, "server": True}
    assert r.state.stats["client"].app_plaintext_bytes == 4      # "ping" in a STREAM frame
    # the streams' data, for follow: ping from the client, pong from the server
    plain: dict = {}
    list(tlsscope.read(d / "capture.pcap", keylog=str(d / "keylog.txt"),
                       on_plaintext=lambda i, c, data: plain.setdefault(c, []).append(data)))
    assert plain == {True: [b"ping"], False: [b"pong"]}
    assert r.end == "QUIC CONNECTION_CLOSE from server (NO_ERROR)"
    assert r.certificate_checks is None
    checked = next(iter(tlsscope.read(d / "capture.pcap", keylog=str(d / "keylog.txt"),
                                      ca=str(CORPUS / "syncsynchalt_illustrated-tls12/client/ca.crt"))))
    chk = checked.certificate_checks["server"]
    # "Example CA" signed it, but the leaf expired in 2019 and the capture is from 2022: checked at
    # capture time, as `openssl verify -attime` does
    assert chk.status == "failed" and chk.openssl_status == "certificate has expired"
    assert "cert_expired" in {f.code for f in chk.findings}


def test_embedded_secrets_open_quic_and_name_alpn_of_tls13():
    """chrome-cloudflare-quic-with-secrets.pcapng carries its key log in a Decryption Secrets Block:
    the QUIC connection's Handshake packets open (a CompressedCertificate), and both connections
    report the ALPN their server chose in EncryptedExtensions (h2 over TCP, h3 over QUIC)."""
    from conftest import CORPUS, need_corpus
    import tlsscope
    need_corpus()
    by = {r.transport: r for r in tlsscope.read(CORPUS / "FoxIO-LLC_ja4/pcap/chrome-cloudflare-quic-with-secrets.pcapng")}
    q, t = by["quic"], by["tcp"]
    assert q.decryption["failures"] == 0 and q.decryption["records_decrypted"] > 10
    assert q.decryption["finished_verified"] == {"client": True, "server": True}
    assert "CompressedCertificate" in [e.name for e in q.timeline if e.decrypted]
    assert (t.alpn, q.alpn) == ("h2", "h3")
    assert q.quic["close"]["from"] == "client"


def test_server_initial_captured_first_does_not_swap_the_roles():
    """A server Initial looks like a client's, but it does not open with keys from its own header's
    connection ID: captured before the client's (reordering), it opens nothing."""
    odcid = b"\x66" * 8
    items = [
        dg(1.0, 1, initial(odcid, False, 0, crypto_frame(0, SH), scid=b"ss"), to_server=False),
        dg(1.1, 2, initial(odcid, True, 0, crypto_frame(0, CH), scid=b"cc")),
    ]
    (r,) = list(analyze(items, Options()))
    assert (r.client.ip, r.client.port) == C and r.sni == "example.com"
    assert r.quic["packets"]["client"]["initial"] == 1


def _tshark_quic_streams(path, keylog=None, conn: int = 0) -> dict:
    """tshark's `-z follow,quic,raw,N,S` for every stream of QUIC connection N: {stream: (client, server)}."""
    import subprocess

    from conftest import need_tool
    tshark = need_tool("tshark")
    keys = ["-o", f"tls.keylog_file:{keylog}"] if keylog else []
    ids = subprocess.run([tshark, "-r", str(path), *keys, "-Y", f"quic.connection.number == {conn}", "-T", "fields",
                          "-e", "quic.stream.stream_id"], capture_output=True, text=True, timeout=120).stdout
    streams = sorted({int(s) for line in ids.split() for s in line.split(",") if s})
    out = {}
    for sid in streams:
        text = subprocess.run([tshark, "-r", str(path), *keys, "-q", "-z", f"follow,quic,raw,{conn},{sid}"],
                              capture_output=True, text=True, timeout=120).stdout
        body = text.split("Node 1:", 1)[1].split("\n", 1)[1]
        c = b"".join(bytes.fromhex(x) for x in body.splitlines() if x and not x.startswith(("\t", "=")))
        s = b"".join(bytes.fromhex(x.strip()) for x in body.splitlines() if x.startswith("\t"))
        out[sid] = (c, s)
    return out


def test_quic_stream_data_equals_tshark_follow():
    """What follow delivers for QUIC equals tshark's `follow,quic`: byte for byte where a direction uses
    one stream, and in total per direction where several streams interleave (HTTP/3 control, QPACK and
    request streams)."""
    from conftest import CORPUS, need_corpus
    import tlsscope
    need_corpus()
    cases = [(CORPUS / "syncsynchalt_illustrated-quic/captures/capture.pcap",
              CORPUS / "syncsynchalt_illustrated-quic/captures/keylog.txt"),
             (CORPUS / "FoxIO-LLC_ja4/pcap/chrome-cloudflare-quic-with-secrets.pcapng", None)]
    for path, keylog in cases:
        plain: dict = {True: [], False: []}
        reports = [r for r in tlsscope.read(path, keylog=str(keylog) if keylog else None,
                                            on_plaintext=lambda i, c, data: plain[c].append((i, data)))
                   if r.transport == "quic"]
        first = min(r.id for r in reports)
        mine = {c: b"".join(d for i, d in chunks if i == first) for c, chunks in plain.items()}
        theirs = _tshark_quic_streams(path, keylog)
        assert theirs, path
        if len(theirs) == 1:
            (c, s), = theirs.values()
            assert (mine[True], mine[False]) == (c, s), path
        else:
            assert len(mine[True]) == sum(len(c) for c, _ in theirs.values()), path
            assert len(mine[False]) == sum(len(s) for _, s in theirs.values()), path
            assert mine[True] and mine[False]


def test_quic_early_data_opened_like_tshark():
    """captures/15-quic-early-data: the resumed connection's line travels as 0-RTT data in the datagram of its
    Initial, before the ServerHello names the suite. With the key log (CLIENT_EARLY_TRAFFIC_SECRET) the 0-RTT
    packet opens, its stream data goes to follow under the connection's number, and equals tshark's
    follow,quic; without the secret the packet is counted and left sealed."""
    import json

    from conftest import CAPTURES
    from tlsscope.decrypt import KeyLog
    import tlsscope
    d = CAPTURES / "15-quic-early-data"
    scenario = json.loads((d / "scenario.json").read_text())
    early = scenario["connections"][1]["early_data"].encode()
    plain: list = []
    first, resumed = tlsscope.read(d / "capture.pcap", keylog=str(d / "keylog.txt"),
                                   on_plaintext=lambda i, c, data: plain.append((i, c, data)))
    assert resumed.resumed and not first.resumed
    assert resumed.quic["packets"]["client"]["0rtt"] >= 1
    entry = next(e for e in resumed.timeline if e.name == "QUIC 0-RTT packet")
    assert entry.decrypted
    assert "CLIENT_EARLY_TRAFFIC_SECRET" in resumed.decryption["keys_found"]
    assert resumed.decryption["failures"] == 0
    assert resumed.decryption["finished_verified"] == {"client": True, "server": True}
    mine = b"".join(data for i, c, data in plain if i == resumed.id and c)
    assert mine == early                                   # the 0-RTT line, and nothing else from the client
    assert b"".join(data for i, c, data in plain if i == resumed.id and not c) == early   # the echo
    theirs = _tshark_quic_streams(d / "capture.pcap", d / "keylog.txt", conn=1)
    assert b"".join(c for c, _ in theirs.values()) == mine

    text = (d / "keylog.txt").read_text()
    no_early = "\n".join(ln for ln in text.splitlines() if not ln.startswith("CLIENT_EARLY_TRAFFIC_SECRET"))
    plain.clear()
    _, sealed = tlsscope.read(d / "capture.pcap", keylog=KeyLog.from_bytes(no_early.encode()),
                              on_plaintext=lambda i, c, data: plain.append((i, c, data)))
    entry = next(e for e in sealed.timeline if e.name == "QUIC 0-RTT packet")
    assert not entry.decrypted
    assert b"".join(data for i, c, data in plain if i == sealed.id and c) == b""
