"""One capture file split over several processes (`read -j N`) gives the bytes of one process.

The workers each handle the flows whose port sum falls to them and tick their TCP clock with the
others; the parent merges by position and renumbers (tlsscope.parallel). These tests compare
`-j 1` with `-j 2`/`-j 3` byte for byte on every capture we have. They also use a made-up mix of
real flows that exercises what depends on the whole capture: idle sweeps triggered by another
worker's packet, flows still open at the end, reused ports and interleaved numbering.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from conftest import CAPTURES, CORPUS, corpus_manifest, need_corpus
from tlsscope.capture import open_capture
from tlsscope.cli import main
from tlsscope.model import FIN, RST, Segment
from tlsscope.parallel import read_sharded
from tlsscope.pipeline import Options
from tlsscope.tcp import TcpClose, TcpReassembler

SCENARIOS = sorted(p.parent for p in CAPTURES.glob("*/capture.pcap"))


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _same(capsys, argv: list[str], jobs=(2, 3)) -> str:
    rc1, out1, err1 = _run(capsys, ["read", "-j", "1", "--no-progress", *argv])
    for j in jobs:
        rcj, outj, errj = _run(capsys, ["read", "-j", str(j), "--no-progress", *argv])
        assert (rcj, errj) == (rc1, err1), f"-j {j}: exit code or stderr differ"
        if outj != out1:
            a, b = out1.splitlines(), outj.splitlines()
            first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            pytest.fail(f"-j {j} differs from -j 1 at line {first + 1} of {len(a)}/{len(b)}:\n"
                        f"  -j 1: {a[first][:300] if first < len(a) else '<end>'}\n"
                        f"  -j {j}: {b[first][:300] if first < len(b) else '<end>'}")
    return out1


@pytest.mark.parametrize("fmt", ["--summary", "--json"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_scenarios_identical(capsys, scenario: Path, fmt: str):
    argv = [fmt, str(scenario / "capture.pcap")]
    if (scenario / "keylog.txt").is_file():
        argv += ["--keylog", str(scenario / "keylog.txt")]
    ca = sorted(scenario.glob("ca*.pem"))
    if ca:
        argv += ["--ca", str(ca[0]), "--seclevel", "0"]
    out = _same(capsys, argv)
    assert out.strip(), "no connection reported: the comparison would prove nothing"


def _keylogs(entry: dict) -> list[str]:
    names = [k for k in entry.get("keys", []) if any(w in k.lower() for w in ("keylog", "sslkey", ".keys"))]
    return [str(CORPUS / k) for k in names if (CORPUS / k).is_file()]


def test_corpus_identical(capsys):
    need_corpus()
    compared = 0
    for entry in corpus_manifest():
        path = CORPUS / entry["file"]
        if not path.is_file():
            continue
        argv = ["--json", str(path)]
        for k in _keylogs(entry):
            argv += ["--keylog", k]
        out = _same(capsys, argv, jobs=(2,))
        compared += out.count("\n")
    assert compared > 300, f"only {compared} connections compared"


# -- a mix of real flows over a long time ------------------------------------------------------

def _flows() -> list[list[Segment]]:
    """Every TCP flow of captures/, as its segments in capture order."""
    flows: dict[tuple, list[Segment]] = {}
    for scen in SCENARIOS:
        with open_capture(scen / "capture.pcap") as reader:
            for item in reader:
                if item.__class__ is Segment:
                    a, b = (item.src, item.sport), (item.dst, item.dport)
                    key = (scen.name,) + (min(a, b), max(a, b))
                    flows.setdefault(key, []).append(item)
    return list(flows.values())


def _frame(seg: Segment, sport: int, dport: int, to_server: bool) -> bytes:
    payload = bytes(seg.payload)
    src, dst = (b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02") if to_server else (b"\x0a\x00\x00\x02", b"\x0a\x00\x00\x01")
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seg.seq, seg.ack, 0x50, seg.flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp + payload


def _mix(path: Path, jitter: float = 0.0) -> None:
    """Flows of captures/ renumbered onto ports and times that make the TCP clock matter.

    - three waves 700 s apart (more than the 600 s idle timeout), flows interleaved in each;
    - the flows of the middle wave lose their FIN/RST segments: idle-closed by a later wave's
      packet (of whatever flow, so often another worker's); half of the last wave is cut short,
      still open at the end of the capture;
    - every fifth flow reuses the client port of an earlier one;
    - with ``jitter``, every eighth packet is stamped up to ``jitter`` seconds too early (the
      capture's clock goes backwards, as with packets merged from several interfaces).
    """
    rnd = random.Random(7)
    packets = []
    used: list[int] = []
    for i, segs in enumerate(_flows()):
        first = segs[0]
        client = (first.src, first.sport) if first.flags & 0x12 != 0x12 else (first.dst, first.dport)
        sport = rnd.choice(used) if i % 5 == 4 and used else 20000 + 7 * i
        used.append(sport)
        dport = 443 + i % 3
        start = (i % 3) * 700.0 + rnd.random() * 5
        t0 = first.ts
        if i % 6 == 2:
            segs = segs[:max(4, len(segs) * 2 // 3)]     # cut short: still open at the end
        for n, seg in enumerate(segs):
            if i % 3 == 1 and seg.flags & (FIN | RST):
                continue
            to_server = (seg.src, seg.sport) == client
            ts = start + min(seg.ts - t0, 5.0) + n * 1e-4
            p, q = (sport, dport) if to_server else (dport, sport)
            packets.append((ts, i, n, _frame(seg, p, q, to_server)))
    packets.sort()
    if jitter:
        packets = [(ts + jitter - (rnd.random() * jitter if k % 8 == 3 else 0.0), i, n, data)
                   for k, (ts, i, n, data) in enumerate(packets)]
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, _i, _n, data in packets:
            sec = int(ts)
            fh.write(struct.pack("<IIII", sec, int(round((ts - sec) * 1e6)), len(data), len(data)) + data)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("mix")
    path = d / "mix.pcap"
    _mix(path)
    keys = d / "keys.txt"
    keys.write_bytes(b"".join((s / "keylog.txt").read_bytes() for s in SCENARIOS if (s / "keylog.txt").is_file()))
    return path, keys


@pytest.mark.parametrize("fmt", ["--summary", "--json"])
def test_mixed_flows_identical(capsys, mixed, fmt):
    path, keys = mixed
    out = _same(capsys, [fmt, str(path), "--keylog", str(keys)], jobs=(2, 3, 4))
    assert len(out.splitlines()) > 25


def test_clock_going_backwards_identical(capsys, tmp_path):
    """Workers fold the other flows' packets into one tick of their latest time (CaptureReader.wake):
    with timestamps that go back by more than the tombstone lifetime, closes, reused ports and
    late segments must still come out as in one process."""
    path = tmp_path / "jitter.pcap"
    _mix(path, jitter=30.0)
    for fmt in ("--summary", "--json"):
        assert len(_same(capsys, [fmt, str(path)], jobs=(2, 3)).splitlines()) > 25


def test_sharded_reader_ticks_only_when_woken(mixed):
    """With ``wake`` in the future, the other shards' packets give no ticks, except one of their
    latest time just before an owned segment stamped earlier; with ``wake`` passed, every one does."""
    path, _ = mixed
    ticks = {}
    for wake in (float("-inf"), float("inf")):
        with open_capture(path) as reader:
            reader.shard = (1, 2)
            reader.wake = wake
            ticks[wake] = [item for item in reader if item.__class__ is tuple]
    assert len(ticks[float("-inf")]) > 100
    assert ticks[float("inf")] == []      # the mix's clock never goes back
    from tlsscope.capture.pcapfile import SHARD_MIX

    def shard(port):
        return ((port + 443) * SHARD_MIX >> 16) % 2
    mine = 1000
    other = next(p for p in range(1001, 2000) if shard(p) != shard(mine))
    rows = [(1.0, 1), (5.0, 0), (3.0, 1), (2.0, 1), (4.0, 0)]   # (time, owned?)
    frames = b""
    for ts, owned in rows:
        sport = mine if owned else other
        seg = Segment(ts, 0, "10.0.0.1", "10.0.0.2", sport, 443, 1, 0, 0x10, b"")
        data = _frame(seg, sport, 443, True)
        frames += struct.pack("<IIII", int(ts), 0, len(data), len(data)) + data
    p = path.parent / "back.pcap"
    p.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + frames)
    with open_capture(p) as reader:
        reader.shard = (shard(mine), 2)
        reader.wake = float("inf")
        got = [(it[0], it[1]) if it.__class__ is tuple else ("seg", it.ts) for it in reader]
    # 5.0 (frame 2) and 4.0 (frame 5) are other flows'; 3.0 and 2.0 are owned
    assert got == [("seg", 1.0), (5.0, 3), ("seg", 3.0), ("seg", 2.0)]


def test_mix_exercises_the_clock(mixed):
    """The mix must reach what it was made for, or the test above proves less than it claims."""
    path, _ = mixed
    tcp = TcpReassembler()
    reasons = []
    with open_capture(path) as reader:
        for item in reader:
            if item.__class__ is Segment:
                reasons += [e.reason for e in tcp.feed(item) if e.__class__ is TcpClose]
    reasons += [e.reason for e in tcp.finish() if e.__class__ is TcpClose]
    for why in ("idle", "end_of_capture", "fin", "rst"):
        assert why in reasons, (why, sorted(set(reasons)))


def test_shards_partition_the_flows(mixed):
    """Each worker sees each flow whole or not at all, and together they see every segment."""
    path, _ = mixed
    seen: list[set] = []
    total = 0
    with open_capture(path) as reader:
        for item in reader:
            total += item.__class__ is Segment
    for k in range(3):
        flows, owned = set(), 0
        with open_capture(path) as reader:
            reader.shard = (k, 3)
            for item in reader:
                if item.__class__ is Segment:
                    owned += 1
                    flows.add(frozenset({(item.src, item.sport), (item.dst, item.dport)}))
                else:
                    assert item.__class__ is tuple and len(item) == 2
        seen.append(flows)
        total -= owned
        assert flows, f"shard {k} of 3 got no flow: the port mix is not spreading them"
    assert total == 0
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])


def test_tick_is_the_clock_of_feed():
    """A reassembler ticked with a segment sweeps exactly as one fed with it."""
    def seg(ts, sport, flags, payload=b"", seq=1):
        return Segment(ts, 0, "10.0.0.1", "10.0.0.2", sport, 443, seq, 0, flags, payload)
    a, b = TcpReassembler(), TcpReassembler()
    for r in (a, b):
        r.feed(seg(0.0, 1000, 0x02, seq=0))
    late = seg(700.0, 2000, 0x02, seq=0)
    swept_a = [e for e in a.feed(late) if e.__class__.__name__ == "TcpClose"]
    swept_b = b.tick(700.0)
    assert [(e.reason, e.frame) for e in swept_a] == [(e.reason, e.frame) for e in swept_b] == [("idle", 0)]
    assert b.tick(699.0) == []


def test_read_sharded_refuses_conn_filter():
    with pytest.raises(ValueError):
        list(read_sharded(str(SCENARIOS[0] / "capture.pcap"), Options(conn=1), 2, "summary"))


@pytest.mark.parametrize("cut", [0.5, 0.93])
def test_truncated_and_gzipped_identical(capsys, tmp_path, mixed, cut):
    """A file cut short mid-packet (one note on stderr, not one per worker), gzip too."""
    import gzip
    path, keys = mixed
    data = path.read_bytes()
    short = tmp_path / "short.pcap"
    short.write_bytes(data[:int(len(data) * cut)])
    _, _, err = _run(capsys, ["read", "--summary", "-j", "3", "--no-progress", str(short)])
    assert err.count("cut short") == 1, err
    _same(capsys, ["--summary", str(short), "--keylog", str(keys)])
    packed = tmp_path / "mix.pcap.gz"
    packed.write_bytes(gzip.compress(data[:int(len(data) * cut)]))
    _same(capsys, ["--json", str(packed), "--keylog", str(keys)], jobs=(2,))


def test_filters_keep_single_process_numbers(capsys, mixed):
    """--port/--host/--sni filter in the workers; numbers still count every TLS connection."""
    path, keys = mixed
    out = _same(capsys, ["--summary", str(path), "--keylog", str(keys), "--port", "444"], jobs=(2, 3))
    lines = out.splitlines()
    assert lines and all(":444 " in line for line in lines)
    numbers = [int(line.split()[0][1:]) for line in lines]
    assert max(numbers) > len(lines), "the filter should leave gaps in the numbering"
    _same(capsys, ["--json", str(path), "--sni", "*.test", "--host", "10.0.0.0/8"], jobs=(2,))


def test_merge_forgets_filtered_connections(mixed):
    """Every number handed out is given back (a report or a filtered-out close): the merge
    checks it at the end, so a filter that leaves nothing must still end cleanly."""
    path, _ = mixed
    stats: list = []
    lines = list(read_sharded(str(path), Options(port=65000), 2, "summary", stats_out=stats))
    assert lines == [] and stats[0].tls_connections > 25


# -- QUIC connections in the mix: they age on the same clock --------------------------------------

def _quic_flows() -> list[list]:
    """The QUIC datagrams of a few corpus captures, per UDP address pair, in capture order."""
    from tlsscope.model import Datagram
    from tlsscope.quic import looks_like_quic, split_datagram
    flows: dict[tuple, list] = {}
    for name in ("syncsynchalt_illustrated-quic/captures/capture.pcap", "FoxIO-LLC_ja4/pcap/tls3.pcapng",
                 "FoxIO-LLC_ja4/pcap/tls-handshake.pcapng"):
        with open_capture(CORPUS / name) as reader:
            for item in reader:
                if item.__class__ is Datagram:
                    a, b = (item.src, item.sport), (item.dst, item.dport)
                    flows.setdefault((name, min(a, b), max(a, b)), []).append(item)
    # the QUIC ones: opened by an Initial (the capture edge also passes other UDP that might be QUIC/DTLS)
    return [dgs for dgs in flows.values()
            if looks_like_quic(dgs[0].payload) and split_datagram(dgs[0].payload)[0].kind == "initial"]


def _udp_frame(payload: bytes, sport: int, dport: int, to_server: bool) -> bytes:
    src, dst = (b"\x0a\x00\x01\x01", b"\x0a\x00\x01\x02") if to_server else (b"\x0a\x00\x01\x02", b"\x0a\x00\x01\x01")
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src, dst)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + udp


def test_quic_in_the_mix_identical(capsys, tmp_path):
    """QUIC connections spread over three waves 700 s apart among TCP flows: those of the first two
    waves are closed as idle by whatever packet (often another worker's TCP segment) comes after
    the timeout, the last wave's at the end of the capture; -j 2/3/4 must equal -j 1."""
    need_corpus()
    base = tmp_path / "tcp.pcap"
    _mix(base)
    packets = []
    data = base.read_bytes()
    pos = 24
    while pos < len(data):                       # the TCP mix as (ts, frame bytes)
        sec, usec, caplen, _ = struct.unpack_from("<IIII", data, pos)
        packets.append((sec + usec / 1e6, data[pos + 16:pos + 16 + caplen]))
        pos += 16 + caplen
    quic = _quic_flows()
    assert len(quic) >= 10
    rnd = random.Random(11)
    for wave in range(3):
        for i, dgs in enumerate(quic):
            client = (dgs[0].src, dgs[0].sport)
            sport, dport = 40000 + 13 * i + wave, 443 + (i + wave) % 4
            start = wave * 700.0 + rnd.random() * 5
            t0 = dgs[0].ts
            for n, dg in enumerate(dgs):
                to_server = (dg.src, dg.sport) == client
                p, q = (sport, dport) if to_server else (dport, sport)
                packets.append((start + min(dg.ts - t0, 5.0) + n * 1e-4, _udp_frame(dg.payload, p, q, to_server)))
    packets.sort(key=lambda x: x[0])
    path = tmp_path / "mix-quic.pcap"
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, frame in packets:
            sec = int(ts)
            fh.write(struct.pack("<IIII", sec, int(round((ts - sec) * 1e6)), len(frame), len(frame)) + frame)
    out = _same(capsys, ["--summary", str(path)], jobs=(2, 3, 4))
    lines = out.splitlines()
    quic_lines = [x for x in lines if "  QUIC  " in x]
    assert len(quic_lines) == 3 * len(quic), (len(quic_lines), len(quic))
    # the first two waves' QUIC connections ended by the idle timeout, the last wave's with the capture
    assert sum("end=idle_timeout" in x for x in quic_lines) == 2 * len(quic)
    assert len(lines) > len(quic_lines) + 25
    _same(capsys, ["--json", str(path)], jobs=(2,))
