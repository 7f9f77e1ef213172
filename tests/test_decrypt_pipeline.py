"""Issue 5, "done when": decryption through the real pipeline and CLI, with tshark as the oracle.

For every key-bearing capture of the shared corpus (manifest ``keys`` / ``key_verification``;
TLS over TCP only) and every ``captures/NN/`` with a key log, ``tlsscope.read`` collects the
decrypted application data per connection and direction (``on_plaintext``); tshark decrypts
the same capture with the same keys (``-z follow,tls,raw,N``).  Connections are matched by
their endpoints, and the plaintext must be byte-identical per direction.  Every connection
must report no decryption failure, and each side's Finished must be verified exactly where
tshark (with the keys) sees that Finished in the capture.  Deviations would be listed, with
their reason, in ``KNOWN_DIFFERENCES``.

Also here: the illustrated TLS 1.3 key schedule against its published intermediate values,
the ``--rsa-key``-only session cache (resumption across connections), keys that arrive in the
middle of a capture (a DSB after the packets, a growing key log), and the CLI (``tlsscope
follow`` text/hex/raw and its errors, ``tlsscope read --keylog --json``).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import tlsscope
from conftest import CAPTURES, CORPUS, corpus_manifest, need_corpus, need_tool
from tlsscope.decrypt import RsaKeys, tls13

# (case id, connection number) -> why tlsscope's plaintext or Finished verdict differs from
# tshark's (connection 0: a TLS stream tshark has and tlsscope does not).  Empty: every
# connection of every case agrees.  An entry must stay true (the test fails when the
# difference disappears), so this list cannot go stale.
KNOWN_DIFFERENCES: dict[tuple[str, int], str] = {}

# Captures whose every connection fails its handshake before any application data.
NO_APPLICATION_DATA = {
    "04-server-cert-rejected": "every handshake is aborted by the client (bad server certificate)",
}

Endpoint = tuple[str, int]


@dataclass(frozen=True)
class Case:
    id: str
    capture: Path
    keys: tuple[Path, ...]          # key logs and RSA private keys, as the manifest lists them
    skip: str | None = None
    dsb: bool = False               # the key log is inside the capture (pcapng Decryption Secrets Block)

    def __str__(self) -> str:
        return self.id


def _corpus_cases() -> list[Case]:
    cases = []
    for c in corpus_manifest():
        if not (c.get("keys") or c.get("key_verification")):
            continue
        odd = [t for t in ("DTLS", "QUIC") if t in c.get("tags", ())]
        why = {"DTLS": "compared per datagram in test_dtls_pipeline.py (this test follows TCP streams): "
                       "pre-RFC DTLS with tshark's dtls.keys_list, DTLS 1.3 with the published plaintext "
                       "(tshark 4.0 does not decrypt DTLS 1.3)", "QUIC": QUIC_SKIP}
        skip = f"{odd[0]}: {why[odd[0]]}" if odd else None
        dsb = "TLS-keylog" in ((c.get("tshark") or {}).get("dsb") or ())
        cases.append(Case(c["id"], CORPUS / c["file"], tuple(CORPUS / k for k in c.get("keys", ())), skip, dsb))
    return cases


QUIC_SKIP = ("decrypted per packet, not as records: its stream data is compared with tshark's "
             "follow,quic in test_quic_pipeline.py")


def _capture_cases() -> list[Case]:
    cases = []
    for d in sorted(CAPTURES.glob("[0-9][0-9]-*")):
        if not (d / "keylog.txt").is_file():
            continue
        scenario = json.loads((d / "scenario.json").read_text())
        keys = [d / "keylog.txt"] + ([d / scenario["rsa_key"]] if scenario.get("rsa_key") else [])
        skip = f"QUIC: {QUIC_SKIP}" if scenario.get("transport") == "quic" else None
        cases.append(Case(d.name, d / scenario.get("capture", "capture.pcap"), tuple(keys), skip))
    return cases


CASES = _corpus_cases() + _capture_cases()


def _split_keys(paths) -> tuple[list[Path], list[Path]]:
    """(key logs, RSA private keys); other key files (X25519 ephemeral keys) are not decryption keys."""
    keylogs, rsa = [], []
    for p in paths:
        if p.suffix in (".key", ".pem"):
            if len(RsaKeys.load([p])):
                rsa.append(p)
        else:
            keylogs.append(p)
    return keylogs, rsa


def _ep(ip: str, port) -> Endpoint:
    return ipaddress.ip_address(ip.strip("[]")).compressed, int(port)


# --- tlsscope ---------------------------------------------------------------------------------
@dataclass
class Ours:
    reports: list
    plain: dict = field(default_factory=lambda: defaultdict(lambda: {True: bytearray(), False: bytearray()}))


_OURS: dict[tuple, Ours] = {}


def ours(capture: Path, keylogs, rsa) -> Ours:
    key = (capture, tuple(keylogs), tuple(rsa))
    if key not in _OURS:
        res = Ours([])
        res.reports = sorted(tlsscope.read(capture, keylog=keylogs or None, rsa_key=rsa or None,
                                           on_plaintext=lambda i, c, d: res.plain[i][c].extend(d)),
                             key=lambda r: r.id)
        _OURS[key] = res
    return _OURS[key]


# --- tshark -----------------------------------------------------------------------------------
@dataclass
class Stream:
    endpoints: frozenset
    tls: bool = False
    finished_from: set = field(default_factory=set)      # endpoints that sent a Finished
    node0: Endpoint | None = None                         # follow output: lines without a tab
    chunks: list = field(default_factory=list)            # [(from node 0, bytes)]


def _tshark(args: list[str]) -> str:
    p = subprocess.run([need_tool("tshark"), *args], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-800:]
    return p.stdout


def tshark_oracle(capture: Path, keylogs, rsa) -> dict[int, Stream]:
    """tshark's view with the same keys: per TCP stream, endpoints, Finished senders, plaintext."""
    assert len(keylogs) <= 1, "tshark takes one key log file"
    opts = ["-r", str(capture), "-n"]
    if keylogs:
        opts += ["-o", f"tls.keylog_file:{keylogs[0]}"]
    for key in rsa:
        opts += ["-o", f'uat:rsa_keys:"{key}",""']
    streams: dict[int, Stream] = {}
    fields = ["tcp.stream", "ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport",
              "tls.record.content_type", "tls.handshake.type"]
    out = _tshark([*opts, "-Y", "tcp", "-T", "fields", *sum((["-e", f] for f in fields), [])])
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) < len(fields) or not f[0]:
            continue
        f = [v.split(",")[0] for v in f[:7]] + f[7:]   # the outer header of a tunnelled packet
        src, dst = _ep(f[1] or f[2], f[3]), _ep(f[4] or f[5], f[6])
        s = streams.setdefault(int(f[0]), Stream(frozenset((src, dst))))
        s.tls |= bool(f[7])
        if "20" in f[8].split(","):
            s.finished_from.add(src)
    # DTLS: tshark 4.0 has no "follow,dtls"; the decrypted application data of each record is its
    # data.data field, in frame order (UDP streams numbered after the TCP ones)
    ufields = ["udp.stream", "ip.src", "ipv6.src", "udp.srcport", "ip.dst", "ipv6.dst", "udp.dstport",
               "dtls.record.content_type", "dtls.handshake.type", "data.data"]
    out = _tshark([*opts, "-Y", "dtls", "-T", "fields", *sum((["-e", f] for f in ufields), [])])
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) < len(ufields) or not f[0]:
            continue
        src, dst = _ep(f[1] or f[2], f[3]), _ep(f[4] or f[5], f[6])
        s = streams.setdefault(1_000_000 + int(f[0]), Stream(frozenset((src, dst)), node0=src))
        s.tls = True
        if "20" in f[8].split(","):
            s.finished_from.add(src)
        for chunk in filter(None, f[9].split(",")):
            s.chunks.append((src == s.node0, bytes.fromhex(chunk)))
    # one run for every TLS stream (tshark takes many -z follow arguments)
    tls_ids = [i for i, s in streams.items() if s.tls and i < 1_000_000]
    if tls_ids:
        current = None
        out = _tshark([*opts, "-q", *sum((["-z", f"follow,tls,raw,{i}"] for i in tls_ids), [])])
        for line in out.splitlines():
            if line.startswith("Filter: tcp.stream eq "):
                current = streams[int(line.split()[-1])]
            elif current is not None and line.startswith("Node 0: "):
                addr = line[len("Node 0: "):].rsplit(":", 1)
                current.node0 = _ep(*addr) if addr[0] else None
            elif current is not None and line.strip() and not line.startswith(("=", "Node ", "Follow", "Filter")):
                current.chunks.append((not line.startswith("\t"), bytes.fromhex(line.strip())))
    return streams


@pytest.fixture(scope="module")
def oracle(request):
    """tshark results for the selected cases, computed two at a time in the background."""
    selected = []
    for item in request.session.items:
        case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
        if item.module is request.module and isinstance(case, Case) and case.skip is None and case not in selected:
            selected.append(case)
    pool = ThreadPoolExecutor(2)
    futures: dict[str, Future] = {}

    def get(case: Case) -> dict[int, Stream]:
        need_tool("tshark")
        if not futures:
            for c in selected or [case]:
                if c.capture.is_file():
                    futures[c.id] = pool.submit(tshark_oracle, c.capture, *_split_keys(c.keys))
        if case.id not in futures:
            futures[case.id] = pool.submit(tshark_oracle, case.capture, *_split_keys(case.keys))
        return futures[case.id].result()

    yield get
    pool.shutdown(wait=True, cancel_futures=True)


# --- the differential -------------------------------------------------------------------------
def _compare(case: Case, res: Ours, streams: dict[int, Stream]) -> dict[int, list[str]]:
    """Differences per connection number (empty lists are dropped)."""
    diffs: dict[int, list[str]] = defaultdict(list)
    by_endpoints: dict[frozenset, list[int]] = defaultdict(list)
    for i in sorted(streams):
        if streams[i].tls:
            by_endpoints[streams[i].endpoints].append(i)
    matched: set[int] = set()
    for r in res.reports:
        c, s = _ep(r.client.ip, r.client.port), _ep(r.server.ip, r.server.port)
        group = by_endpoints.get(frozenset((c, s)), [])
        if not group:   # a reused 4-tuple is several streams, matched in order
            diffs[r.id].append(f"no tshark TLS stream between {c} and {s}")
            continue
        stream = streams[group.pop(0)]
        matched.add(id(stream))
        # plaintext per direction
        if stream.chunks:
            if stream.node0 not in (c, s):
                diffs[r.id].append(f"tshark follow node 0 {stream.node0} is neither endpoint")
                continue
            node0_is_client = stream.node0 == c
            theirs = {True: b"".join(d for n0, d in stream.chunks if n0 == node0_is_client),
                      False: b"".join(d for n0, d in stream.chunks if n0 != node0_is_client)}
        else:
            theirs = {True: b"", False: b""}
        for from_client, side in ((True, "client"), (False, "server")):
            mine = bytes(res.plain[r.id][from_client])
            if mine != theirs[from_client]:
                at = next((k for k in range(min(len(mine), len(theirs[from_client])))
                           if mine[k] != theirs[from_client][k]), min(len(mine), len(theirs[from_client])))
                diffs[r.id].append(f"{side} plaintext: {len(mine)} bytes vs tshark {len(theirs[from_client])}, "
                                   f"first difference at byte {at}")
            if r.application_data[side]["plaintext_bytes"] != len(mine):
                diffs[r.id].append(f"{side} application_data.plaintext_bytes "
                                   f"{r.application_data[side]['plaintext_bytes']} != {len(mine)} delivered")
        # Finished: verified exactly where tshark decrypts one
        verified = (r.decryption or {}).get("finished_verified", {})
        for side, ep in (("client", c), ("server", s)):
            seen = ep in stream.finished_from
            if verified.get(side) is not (True if seen else None):
                diffs[r.id].append(f"{side} Finished: finished_verified={verified.get(side)!r}, "
                                   f"tshark {'sees' if seen else 'does not see'} it")
    for i, st in sorted(streams.items()):
        if st.tls and id(st) not in matched:
            diffs[0].append(f"tshark TLS stream {i} ({sorted(st.endpoints)}) has no tlsscope connection")
    return {k: v for k, v in diffs.items() if v}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_plaintext_identical_to_tshark(case: Case, oracle):
    """The issue's "done when": every key-bearing capture decrypts, byte-identical to tshark."""
    if case.id[:2].isdigit():
        assert case.capture.is_file(), case.capture
    else:
        need_corpus()
    if case.skip:
        pytest.skip(case.skip)
    keylogs, rsa = _split_keys(case.keys)
    assert keylogs or rsa or case.dsb, f"{case.id}: no usable key in {case.keys}"
    res = ours(case.capture, keylogs, rsa)
    assert res.reports, case.id
    for r in res.reports:
        d = r.decryption
        assert d is not None, (case.id, r.id)
        assert d["failures"] == 0 and d["problems"] == [], (case.id, r.id, d)
    # the capture decrypts: records open, and application data where the handshakes succeeded
    assert sum(r.decryption["records_decrypted"] for r in res.reports) > 0, case.id
    if case.id not in NO_APPLICATION_DATA:
        assert any(p[True] or p[False] for p in res.plain.values()), case.id
    diffs = _compare(case, res, oracle(case))
    known = {conn: why for (cid, conn), why in KNOWN_DIFFERENCES.items() if cid == case.id}
    unexplained = {conn: d for conn, d in diffs.items() if conn not in known}
    assert not unexplained, f"{case.id}: {unexplained}"
    stale = [conn for conn in known if conn not in diffs]
    assert not stale, f"{case.id}: KNOWN_DIFFERENCES entries no longer differ: {stale}"


def test_case_inventory():
    """The captures the issue names are all in the differential (and only DTLS/QUIC are skipped)."""
    need_corpus()
    ids = {c.id: c for c in CASES}
    assert ids["J4-005"].dsb and not ids["J4-005"].keys
    for required in ("IL-001", "IL-002", "WN-001", "WF-001", "J4-005", "SD-001", "SD-009",
                     "06-hello-retry-request", "07-resumption", "09-legacy"):
        assert required in ids and ids[required].skip is None, required
    assert {c.id for c in CASES if c.skip} == {"IL-003", "IL-004", "J4-003", "WF-002", "14-quic",
                                               "15-quic-early-data"}
    assert len([c for c in CASES if c.id.startswith("SD-")]) == 9
    assert _split_keys(ids["09-legacy"].keys)[1] == [CAPTURES / "09-legacy" / "server.key"]


# --- resumption, HelloRetryRequest, RSA keys --------------------------------------------------
def test_resumed_sessions_and_hello_retry_request_decrypt():
    """captures/: resumed sessions (TLS 1.3 PSK and TLS 1.2) and a HelloRetryRequest decrypt fully."""
    d = CAPTURES / "07-resumption"
    res = ours(d / "capture.pcap", [d / "keylog.txt"], [])
    resumed = [r for r in res.reports if r.resumed]
    assert len(resumed) >= 3
    for r in resumed:
        assert r.decryption["finished_verified"] == {"client": True, "server": True}, r.id
        assert res.plain[r.id][True] and res.plain[r.id][False], r.id
    d = CAPTURES / "06-hello-retry-request"
    res = ours(d / "capture.pcap", [d / "keylog.txt"], [])
    (r,) = res.reports
    assert r.hello_retry_request is not None and r.version == 0x0304
    assert r.decryption["finished_verified"] == {"client": True, "server": True}
    assert res.plain[r.id][True] and res.plain[r.id][False]


def test_rsa_key_alone_resumes_across_connections():
    """--rsa-key without a key log: the session learnt in connection 1 (SSLv2-format hello,
    SSL 3.0, RSA key exchange) decrypts the abbreviated handshake of connection 2."""
    corpus = need_corpus()
    key = corpus / "marshalyyx2000_wireshark/test/keys/rsasnakeoil2.key"
    reports = list(tlsscope.read_all(corpus / "marshalyyx2000_wireshark/test/captures/rsasnakeoil2.pcap",
                                     rsa_key=key))
    assert [r.resumed for r in reports] == [False, True]
    for r in reports:
        d = r.decryption
        assert (d["method"], d["failures"], d["version"]) == ("rsa", 0, 0x0300), (r.id, d)
        assert d["finished_verified"] == {"client": True, "server": True}, r.id
        assert r.application_data["server"]["plaintext_bytes"] > 0
    assert any(h["line"].startswith("GET /") for h in reports[1].http)


def test_legacy_rsa_key_alone():
    """09-legacy with server.key only: the RSA key exchange (connection 3) decrypts exactly as
    with the key log; the ECDHE ones cannot, and say why."""
    d = CAPTURES / "09-legacy"
    with_log = ours(d / "capture.pcap", [d / "keylog.txt"], [])
    alone = ours(d / "capture.pcap", [], [d / "server.key"])
    methods = {r.id: r.decryption["method"] for r in alone.reports}
    assert methods == {1: None, 2: None, 3: "rsa"}
    r3 = alone.reports[2]
    assert r3.decryption["failures"] == 0
    assert r3.decryption["finished_verified"] == {"client": True, "server": True}
    assert alone.plain[3] == with_log.plain[3] and alone.plain[3][True]
    for r in alone.reports[:2]:
        assert r.decryption["failures"] > 0 and r.decryption["records_decrypted"] == 0
        assert not alone.plain[r.id][True] and not alone.plain[r.id][False]
        assert any(f.code == "decryption_failed" and "no key for client random" in f.message
                   for f in r.findings), r.id


# --- illustrated TLS 1.3: the published intermediate values -----------------------------------
# Transcribed from https://tls13.xargs.org (syncsynchalt/illustrated-tls13 site/index.html,
# "Server Handshake Keys Calc", "Server Application Keys Calc", "Client Handshake Finished"),
# the edition whose capture is in the corpus (TLS_AES_256_GCM_SHA384).
ILLUSTRATED = {
    "shared_secret": "df4a291baa1eb7cfa6934b29b474baad2697e29f1f920dcc77c8a0a088447624",
    "hello_hash": "e05f64fcd082bdb0dce473adf669c2769f257a1c75a51b7887468b5e0e7a7de4"
                  "f4d34555112077f16e079019d5a845bd",
    "handshake_secret": "bdbbe8757494bef20de932598294ea65b5e6bf6dc5c02a960a2de2eaa9b07c92"
                        "9078d2caa0936231c38d1725f179d299",
    "server_handshake_traffic_secret": "23323da031634b241dd37d61032b62a4f450584d1f7f47983ba2f7cc0cdcc39a"
                                       "68f481f2b019f9403a3051908a5d1622",
    "client_handshake_traffic_secret": "db89d2d6df0e84fed74a2288f8fd4d0959f790ff23946cdf4c26d85e51bebd42"
                                       "ae184501972f8d30c4a3e4a3693d0ef0",
    "server_handshake_key": "9f13575ce3f8cfc1df64a77ceaffe89700b492ad31b4fab01c4792be1b266b7f",
    "server_handshake_iv": "9563bc8b590f671f488d2da3",
    "client_handshake_key": "1135b4826a9a70257e5a391ad93093dfd7c4214812f493b3e3daae1eb2b1ac69",
    "client_handshake_iv": "4256d2e0e88babdd05eb2f27",
    "handshake_hash": "fa6800169a6baac19159524fa7b9721b41be3c9db6f3f93fa5ff7e3db3ece204"
                      "d2b456c51046e40ec5312c55a86126f5",
    "server_application_key": "01f78623f17e3edcc09e944027ba3218d57c8e0db93cd3ac419309274700ac27",
    "server_application_iv": "196a750b0c5049c0cc51a541",
    "client_application_key": "de2f4c7672723a692319873e5c227606691a32d1c59d8b9f51dbb9352e9ca9cc",
    "client_application_iv": "bb007956f474b25de902432f",
    "client_finished_verify_data": "bff56a671b6c659d0a7c5dd18428f58bdd38b184a3ce342d"
                                   "9fde95cbd5056f7da7918ee320eab7a93abd8f1c02454d27",
}


def test_illustrated_tls13_key_schedule_published_values():
    """The key schedule from the illustrated capture's ephemeral X25519 keys and hello bytes
    reproduces every published intermediate value, and ends at the key log's secrets."""
    from cryptography.hazmat.primitives import serialization

    base = need_corpus() / "syncsynchalt_illustrated-tls13"
    files, caps = base / "site/files", base / "captures/caps"
    want = {k: bytes.fromhex(v) for k, v in ILLUSTRATED.items()}
    h = "sha384"
    private = serialization.load_pem_private_key((files / "client-ephemeral-private.key").read_bytes(), None)
    public = serialization.load_pem_public_key((files / "server-ephemeral-public.key").read_bytes())
    shared = private.exchange(public)
    assert shared == want["shared_secret"]
    hellos = (caps / "clienthello").read_bytes()[5:] + (caps / "serverhello").read_bytes()[5:]
    hello_hash = tls13.hash_bytes(h, hellos)
    assert hello_hash == want["hello_hash"]
    hs = tls13.handshake_secret(h, tls13.early_secret(h), shared)
    assert hs == want["handshake_secret"]
    shts = tls13.derive_secret(h, hs, "s hs traffic", hello_hash)
    chts = tls13.derive_secret(h, hs, "c hs traffic", hello_hash)
    assert (shts, chts) == (want["server_handshake_traffic_secret"], want["client_handshake_traffic_secret"])
    assert tls13.traffic_key_iv(h, shts, 32) == (want["server_handshake_key"], want["server_handshake_iv"])
    assert tls13.traffic_key_iv(h, chts, 32) == (want["client_handshake_key"], want["client_handshake_iv"])
    # the caps hold TLSInnerPlaintext: drop the content type byte
    flight = b"".join((caps / n).read_bytes()[:-1]
                      for n in ("serverextensions", "servercert", "servercertverify", "serverfinished"))
    handshake_hash = tls13.hash_bytes(h, hellos + flight)
    assert handshake_hash == want["handshake_hash"]
    ms = tls13.master_secret(h, hs)
    sats = tls13.derive_secret(h, ms, "s ap traffic", handshake_hash)
    cats = tls13.derive_secret(h, ms, "c ap traffic", handshake_hash)
    assert tls13.traffic_key_iv(h, sats, 32) == (want["server_application_key"], want["server_application_iv"])
    assert tls13.traffic_key_iv(h, cats, 32) == (want["client_application_key"], want["client_application_iv"])
    verify = tls13.finished_verify_data(h, chts, handshake_hash)
    assert verify == want["client_finished_verify_data"]
    assert (caps / "clientfinished").read_bytes()[:-1] == b"\x14\x00\x00\x30" + verify
    # the secrets the schedule produced are the ones the capture's key log holds
    log = {line.split()[0]: bytes.fromhex(line.split()[2])
           for line in (base / "captures/keylog.txt").read_text().splitlines() if line.strip()}
    assert (log["SERVER_HANDSHAKE_TRAFFIC_SECRET"], log["CLIENT_HANDSHAKE_TRAFFIC_SECRET"]) == (shts, chts)
    assert (log["SERVER_TRAFFIC_SECRET_0"], log["CLIENT_TRAFFIC_SECRET_0"]) == (sats, cats)
    # and through the pipeline the capture decrypts to the published "ping"/"pong"
    res = ours(base / "captures/capture.pcap", [base / "captures/keylog.txt"], [])
    assert [(bytes(p[True]), bytes(p[False])) for p in res.plain.values()] == [(b"ping", b"pong")]


# --- the CLI ----------------------------------------------------------------------------------
def run(*args, rc: int = 0) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "tlsscope", *map(str, args)], capture_output=True, timeout=120)
    assert p.returncode == rc, (p.returncode, p.stdout[-800:], p.stderr[-800:])
    assert b"Traceback" not in p.stderr, p.stderr
    return p


MTLS13 = CAPTURES / "02-modern-mtls13"


def _chunks(capture: Path, keylog: Path, conn: int) -> list[tuple[bool, bytes]]:
    out: list[tuple[bool, bytes]] = []
    def keep(i: int, from_client: bool, data: bytes) -> None:
        if i == conn:
            out.append((from_client, data))

    list(tlsscope.read(capture, keylog=keylog, on_plaintext=keep))
    return out


def test_cli_follow_text_hex_raw():
    cap, log = MTLS13 / "capture.pcap", MTLS13 / "keylog.txt"
    chunks = _chunks(cap, log, 1)
    assert [c for c, _ in chunks] == [True, False] and all(d for _, d in chunks)
    text = run("follow", cap, "--conn", 1, "--keylog", log).stdout.decode()
    want = "".join(f"=== {'client → server' if c else 'server → client'} ({len(d)} bytes)\n"
                   + d.decode() + ("" if d.endswith(b"\n") else "\n") for c, d in chunks)
    assert text == want
    hexed = run("follow", cap, "--conn", 1, "--keylog", log, "--hex").stdout.decode().splitlines()
    first = chunks[0][1]
    assert hexed[0] == f"=== client → server ({len(first)} bytes)"
    assert hexed[1] == f"00000000  {first[:16].hex(' '):<47}  " + "".join(
        chr(b) if 32 <= b < 127 else "." for b in first[:16])
    raw = run("follow", cap, "--conn", 1, "--keylog", log, "--raw").stdout
    assert raw == b"".join(d for _, d in chunks)


def test_cli_follow_shows_only_the_chosen_connection():
    """07-resumption has six connections that say the same thing: --conn N shows one of them."""
    d = CAPTURES / "07-resumption"
    for n in (1, 4):
        raw = run("follow", d / "capture.pcap", "--conn", n, "--keylog", d / "keylog.txt", "--raw").stdout
        assert raw == b"".join(x for _, x in _chunks(d / "capture.pcap", d / "keylog.txt", n)) and raw


def test_cli_follow_errors_are_one_line():
    cap, log = MTLS13 / "capture.pcap", MTLS13 / "keylog.txt"
    for args, needle in (((cap, "--conn", 1), b"no key log given"),
                         ((cap, "--conn", 9, "--keylog", log), b"no TLS connection number 9"),
                         ((cap, "--keylog", log), b"--conn"),
                         ((cap, "--conn", 1, "--keylog", CAPTURES / "01-classic-sha1-mtls12" / "keylog.txt"),
                          b"no decrypted application data")):
        p = run("follow", *args, rc=2)
        lines = p.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tlsscope: error:") and needle in p.stderr, p.stderr
        assert p.stdout == b""


def test_cli_read_json_decryption():
    out = run("read", MTLS13 / "capture.pcap", "--keylog", MTLS13 / "keylog.txt", "--json").stdout
    (d,) = [json.loads(line) for line in out.decode().splitlines()]
    dec = d["decryption"]
    assert dec["used"] is True and dec["method"] == "keylog" and dec["failures"] == 0
    assert dec["finished_verified"] == {"client": True, "server": True}
    assert {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"} <= set(dec["keys_found"])
    decrypted = [m["name"] for m in d["messages"] if m.get("decrypted")]
    assert {"EncryptedExtensions", "Certificate", "CertificateVerify", "Finished", "ApplicationData",
            "Alert"} <= set(decrypted)
    assert all(not m["encrypted"] for m in d["messages"])     # nothing left unread
    assert d["certificates"]["client"] and d["certificates"]["server"]
    chunks = _chunks(MTLS13 / "capture.pcap", MTLS13 / "keylog.txt", 1)
    assert d["application_data"]["client"]["plaintext_bytes"] == sum(len(x) for c, x in chunks if c)
    assert d["application_data"]["server"]["plaintext_bytes"] == sum(len(x) for c, x in chunks if not c)
    # without keys: the same messages are encrypted, and there is no decryption object
    out = run("read", MTLS13 / "capture.pcap", "--json").stdout
    plain = json.loads(out.decode().splitlines()[0])
    assert plain["decryption"] is None and not any(m.get("decrypted") for m in plain["messages"])
    assert any(m["encrypted"] for m in plain["messages"])


# --- keys that arrive mid-capture (a DSB after some packets, a key log that grows) ------------
def _emitted(segments: list, keys: bytes, cut: int, monkeypatch) -> tuple[dict, list]:
    """What the pipeline delivers when the key log arrives as a Decryption Secrets Block just
    before segment ``cut``: {(conn, from_client): [(segment index, plaintext)]}, and the
    [(segment index, reason)] of every record it could not open."""
    from tlsscope.decrypt import ConnectionDecryptor, DecryptFailure, KeyLog
    from tlsscope.model import DecryptionSecrets
    from tlsscope.pipeline import TLS_KEYLOG_SECRETS, Analyzer, Options

    at = [0]
    got: dict = defaultdict(list)
    failures: list = []
    decrypt = ConnectionDecryptor.decrypt

    def spy(self, *args, **kwargs):
        res = decrypt(self, *args, **kwargs)
        if isinstance(res, DecryptFailure):
            failures.append((at[0], res.reason))
        return res

    monkeypatch.setattr(ConnectionDecryptor, "decrypt", spy)
    an = Analyzer(Options(keylog=KeyLog(), on_plaintext=lambda i, c, d: got[(i, c)].append((at[0], d))))
    for k, seg in enumerate(segments):
        if k == cut:
            an.feed(DecryptionSecrets(TLS_KEYLOG_SECRETS, keys, k))
        at[0] = k
        an.feed(seg)
    at[0] = len(segments)
    an.finish()
    monkeypatch.undo()
    return got, failures


LATE_KEYS = {
    # TLS 1.0/1.1 CBC with encrypt-then-MAC (the IV chains from the block before the MAC),
    # TLS 1.2 RSA key exchange
    "09-legacy": ("captures/09-legacy/capture.pcap", "captures/09-legacy/keylog.txt"),
    # TLS 1.3 and TLS 1.2 resumptions
    "07-resumption": ("captures/07-resumption/capture.pcap", "captures/07-resumption/keylog.txt"),
    # KeyUpdates in both directions that go by before the keys do
    "SD-008": ("corpus:adulau_ssldump/samples/tls1.3_keyupdates_aes256.pcap",
               "corpus:adulau_ssldump/samples/log.txt"),
    # RC4 keystreams (40-bit export and 128-bit)
    "WN-018": ("corpus:Lekensteyn_wireshark-notes/tls/works/dump.pcapng",
               "corpus:Lekensteyn_wireshark-notes/tls/works/premaster.txt"),
    # 73 suites, DEFLATE compression (RFC 3749): the zlib header goes by before the keys
    "WN-001": ("corpus:Lekensteyn_wireshark-notes/all/dump.pcapng",
               "corpus:Lekensteyn_wireshark-notes/all/premaster.txt"),
}


@pytest.mark.parametrize("name", sorted(LATE_KEYS))
def test_keys_arriving_mid_capture(name, monkeypatch):
    """Whatever arrives after the keys decrypts: no record fails once the keys are there, and
    each connection's plaintext is exactly what the pipeline with the keys from the start
    delivered from that segment on (records before the keys are lost; chained cipher state,
    KeyUpdates and DEFLATE are caught up)."""
    from tlsscope.capture import open_capture
    from tlsscope.model import Segment

    def path(p: str) -> Path:
        return need_corpus() / p[len("corpus:"):] if p.startswith("corpus:") else CAPTURES.parent / p

    capture, keylog = map(path, LATE_KEYS[name])
    with open_capture(capture) as reader:
        segments = [x for x in reader if type(x) is Segment]
    keys = keylog.read_bytes()
    full, failures = _emitted(segments, keys, 0, monkeypatch)
    assert failures == []
    assert full and all(b"".join(d for _, d in chunks) for chunks in full.values())
    if name == "WN-001":
        assert len({conn for conn, _ in full}) == 73
    step = 1 if len(segments) <= 150 else len(segments) // 6     # every segment boundary, or six
    cuts = set(range(step, len(segments), step))
    # and all through the middle of (up to two) DEFLATE-compressed connections
    compressed = [r for r in tlsscope.read_all(capture, keylog=keylog)
                  if r.server_hello is not None and r.server_hello.legacy_compression_method]
    for r in compressed[:2]:
        ends = {(r.client.ip, r.client.port), (r.server.ip, r.server.port)}
        mine = [k for k, g in enumerate(segments) if {(g.src, g.sport), (g.dst, g.dport)} == ends]
        cuts.update(mine[len(mine) // 3: 2 * len(mine) // 3])
    if name == "WN-001":
        assert compressed and len(cuts) > 6
    for cut in sorted(cuts):
        late, failures = _emitted(segments, keys, cut, monkeypatch)
        assert [f for f in failures if f[0] >= cut] == [], (name, cut)
        assert all(reason.startswith("no key for client random") for _, reason in failures), (name, cut)
        for key in set(full) | set(late):
            want = b"".join(d for k, d in full.get(key, ()) if k >= cut)
            assert b"".join(d for _, d in late.get(key, ())) == want, (name, cut, key)
