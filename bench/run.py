#!/usr/bin/env python3
"""Time tlsscope against tshark on one capture: median wall time and peak RSS, as ratios.

    python bench/run.py bench/out/bench-20000.pcap [--keylog bench/out/bench-20000.keys] [-k 3]

Every command runs ``-k`` times in a row on the same file (output to a file in
the capture's directory, so the terminal is not measured); each run's peak memory
comes from ``wait4`` on the child and, for several processes (``read -j``), the PSS
summed over the process tree. Pairs:

=================  =================================  =========================================
task               tlsscope                           tshark
=================  =================================  =========================================
summary            read --summary                     -Y 'tls.handshake.type==1' -T fields ...
json               read --json                        (the same ClientHello field extraction)
decrypt            read --keylog K --json             -o tls.keylog_file:K -Y 'type==20' -T fields
=================  =================================  =========================================

When the generator's ``.json`` sidecar is beside the capture, tshark is told
that its TLS server ports carry TLS (``-d tcp.port==P,tls``): otherwise its
port-based dissectors claim a few connections whose client port is registered
to another protocol (EtherNet/IP on 44818, IRC, ...) and it misses their hellos.

plus the floor: a bare Python pass that walks the pcap record headers with
``struct`` (``walk``). Also checked: tlsscope's connection count equals tshark's
ClientHello count, and with the key log both decrypt the same number of
Finished messages (tlsscope: connections whose Finished were decrypted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

TSHARK_CH_FIELDS = ("frame.number", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport",
                    "tls.handshake.version", "tls.handshake.extensions_server_name",
                    "tls.handshake.ciphersuite", "tls.handshake.extension.type", "tls.handshake.ja3")


# -- the floor: walk pcap record headers ------------------------------------------------------------
def walk(path: str) -> int:
    """Count the packets of a pcap by walking its 16-byte record headers (no decoding at all)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
        e = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        rec = struct.Struct(e + "IIII").unpack_from
        buf = b""
        pos = 0
        n = 0
        while True:
            if len(buf) - pos < 16:
                more = fh.read(1 << 20)
                if not more:
                    return n
                buf = buf[pos:] + more
                pos = 0
                continue
            caplen = rec(buf, pos)[2]
            end = pos + 16 + caplen
            if end > len(buf):
                more = fh.read(max(1 << 20, end - len(buf)))
                if not more:
                    return n
                buf = buf[pos:] + more
                pos = 0
                continue
            pos = end
            n += 1


# -- running one command --------------------------------------------------------------------------------
def tree_pss_kb(pid: int) -> int:
    """Proportional set size of a process and all its descendants, summed (kB): pages the
    forked workers share with their parent (the loaded key log, say) are counted once."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            pass
    return total


def run_once(cmd: list[str], out_path: Path, timeout: float) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit status) of one run, stdout to ``out_path``.

    Peak memory: the larger of wait4's ru_maxrss (the largest single process) and the largest
    PSS sum over the process tree, sampled every 200 ms (``read -j`` runs several processes)."""
    with open(out_path, "wb") as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        deadline = t0 + timeout
        tree_peak = 0
        polls = 0
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            polls += 1
            if polls % 40 == 1:
                tree_peak = max(tree_peak, tree_pss_kb(p.pid))
            if time.perf_counter() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, max(ru.ru_maxrss, tree_peak) / 1024.0, p.returncode


def measure(cmd: list[str], out_path: Path, reps: int, timeout: float) -> dict:
    walls, rss = [], []
    rc = 0
    for _ in range(reps):
        w, m, rc = run_once(cmd, out_path, timeout)
        walls.append(w)
        rss.append(m)
    return {"cmd": cmd, "wall": statistics.median(walls), "walls": walls, "rss_mb": max(rss), "rc": rc}


def count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        for _ in fh:
            n += 1
    return n


def decrypted_finished(path: Path) -> int:
    """Finished messages tlsscope decrypted (from --json with a key log)."""
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            for m in json.loads(line)["messages"]:
                if m.get("handshake_type") == 20 and m.get("decrypted"):
                    n += 1
    return n


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    tshark = ""
    if shutil.which("tshark"):
        tshark = subprocess.run(["tshark", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return f"{os.cpu_count()} cores, {cpu}; Python {platform.python_version()}; {tshark}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="tlsscope vs tshark on one capture")
    ap.add_argument("pcap", nargs="?")
    ap.add_argument("--keylog", help="key log (default: the capture's .keys beside it, if any)")
    ap.add_argument("-k", "--reps", type=int, default=3, help="repetitions of each command (median)")
    ap.add_argument("--tasks", default="walk,summary,json,decrypt,summary-j1,json-j1,decrypt-j1",
                    help="-j1: the same in one process (the others split the file over every core)")
    ap.add_argument("--no-tshark", action="store_true", help="tlsscope only (no ratios)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per run")
    ap.add_argument("--save", help="write the results as JSON here")
    ap.add_argument("--walk", metavar="PCAP", help=argparse.SUPPRESS)   # the floor, run as a child
    args = ap.parse_args(argv)
    if args.walk:
        print(walk(args.walk))
        return 0
    if not args.pcap:
        ap.error("a capture file is needed")
    pcap = Path(args.pcap)
    keylog = args.keylog or (str(pcap.with_suffix(".keys")) if pcap.with_suffix(".keys").exists() else None)
    tasks = args.tasks.split(",")
    if not keylog:
        tasks = [t for t in tasks if not t.startswith("decrypt")]
    use_tshark = not args.no_tshark and shutil.which("tshark") is not None
    out_dir = pcap.parent
    stem = pcap.stem
    py = sys.executable
    tls = [py, "-m", "tlsscope", "read", "--no-progress"]
    fields = [a for f in TSHARK_CH_FIELDS for a in ("-e", f)]
    # tshark picks dissectors by port: a client port such as 44818 (EtherNet/IP) or 6667 (IRC)
    # hides the TLS inside. The generator's sidecar names the TLS server ports: force TLS there.
    decode_as = []
    meta = pcap.with_suffix(".json")
    if meta.exists():
        ports = json.loads(meta.read_text()).get("ports", {})
        for k in ("tls", "mtls"):
            if k in ports:
                decode_as += ["-d", f"tcp.port=={ports[k]},tls"]
    tshark_ch = ["tshark", "-n", "-r", str(pcap), *decode_as, "-Y", "tls.handshake.type == 1", "-T", "fields", *fields]
    plan = {
        "walk": ([py, __file__, "--walk", str(pcap)], None),
        "summary": (tls + ["--summary", str(pcap)], tshark_ch),
        "json": (tls + ["--json", str(pcap)], tshark_ch),
        "decrypt": (tls + ["--keylog", str(keylog), "--json", str(pcap)],
                    ["tshark", "-n", "-r", str(pcap), *decode_as, "-o", f"tls.keylog_file:{keylog}",
                     "-Y", "tls.handshake.type == 20", "-T", "fields", "-e", "frame.number", "-e", "tcp.stream"]),
    }
    for task in list(plan):
        if task != "walk":
            ours, theirs = plan[task]
            plan[task + "-j1"] = (ours[:4] + ["-j", "1"] + ours[4:], theirs)
    size_mb = pcap.stat().st_size / 1e6
    print(f"capture: {pcap} ({size_mb:.0f} MB); machine: {machine()}; {args.reps} repetition(s), median wall time")
    results: dict = {"pcap": str(pcap), "size_mb": round(size_mb, 1), "machine": machine(), "reps": args.reps,
                     "tasks": {}}
    tshark_cache: dict = {}
    for task in tasks:
        ours_cmd, theirs_cmd = plan[task]
        ours_out = out_dir / f"{stem}.run-{task}.out"
        ours = measure(ours_cmd, ours_out, args.reps, args.timeout)
        row = {"tlsscope": ours}
        if task == "walk":
            row["packets"] = int(ours_out.read_text().strip() or 0)
        else:
            row["connections"] = count_lines(ours_out)
            if task.startswith("decrypt"):
                row["finished_decrypted"] = decrypted_finished(ours_out)
        if use_tshark and theirs_cmd is not None:
            key = tuple(theirs_cmd)
            if key not in tshark_cache:
                theirs_out = out_dir / f"{stem}.run-tshark-{task}.out"
                tshark_cache[key] = measure(theirs_cmd, theirs_out, args.reps, args.timeout)
                tshark_cache[key]["lines"] = count_lines(theirs_out)
            row["tshark"] = tshark_cache[key]
        results["tasks"][task] = row
        ours_out.unlink(missing_ok=True)
    walk_s = results["tasks"].get("walk", {}).get("tlsscope", {}).get("wall")
    print(f"{'task':<10} {'tlsscope s':>10} {'MB':>6} {'tshark s':>9} {'MB':>6} "
          f"{'time ratio':>10} {'mem ratio':>9} {'vs walk':>8}  check")
    for task, row in results["tasks"].items():
        o = row["tlsscope"]
        t = row.get("tshark")
        tr = f"{o['wall'] / t['wall']:.2f}" if t else "-"
        mr = f"{o['rss_mb'] / t['rss_mb']:.2f}" if t else "-"
        vw = f"{o['wall'] / walk_s:.2f}" if walk_s and task != "walk" else "-"
        ts = f"{t['wall']:9.2f} {t['rss_mb']:6.0f}" if t else f"{'-':>9} {'-':>6}"
        if task == "walk":
            check = f"{row['packets']} packets"
        elif task.startswith("decrypt"):
            check = f"{row['connections']} connections, {row['finished_decrypted']} Finished decrypted"
            if t:
                check += f" (tshark: {t['lines']} Finished)"
        else:
            check = f"{row['connections']} connections"
            if t:
                check += f" (tshark: {t['lines']} ClientHellos)"
        bad = [c for c in (o, t) if c and c["rc"] not in (0, 1)]
        if bad:
            check += f"  EXIT {[c['rc'] for c in bad]}"
        print(f"{task:<10} {o['wall']:10.2f} {o['rss_mb']:6.0f} {ts} {tr:>10} {mr:>9} {vw:>8}  {check}")
        if t:
            row["time_ratio"] = round(o["wall"] / t["wall"], 3)
            row["mem_ratio"] = round(o["rss_mb"] / t["rss_mb"], 3)
    for f in out_dir.glob(f"{stem}.run-tshark-*.out"):
        f.unlink()
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
