"""Live capture edge: scapy's libpcap socket hands over raw frames; the core does the rest.

No scapy dissection happens per packet: frames go straight to ``decode_frame`` and
the same ``Analyzer`` that reads files. A short delay window lets the key log catch
up (a client writes its secrets while the handshake is on the wire).
"""

from __future__ import annotations

import collections
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Callable

from .capture.frames import IpDefragmenter, decode_frame
from .capture.writer import PcapngWriter
from .model import CaptureNote, Datagram, Segment
from .pipeline import Analyzer, Options


class LiveError(Exception):
    """A one-line, actionable problem (permissions, interface, filter)."""


@dataclass
class LiveStats:
    packets: int = 0
    tcp_segments: int = 0
    kernel_received: int | None = None
    kernel_dropped: int | None = None
    interface_dropped: int | None = None
    handshakes: int = 0
    connections: int = 0
    incomplete: int = 0
    started: float = field(default_factory=time.time)


def _interfaces() -> list[str]:
    try:
        return sorted(os.listdir("/sys/class/net"))
    except OSError:
        return []


def open_socket(iface: str, bpf: str):
    """A libpcap listening socket via scapy, with clear errors."""
    if iface not in _interfaces() and _interfaces():
        raise LiveError(f"unknown interface {iface!r}; available: {', '.join(_interfaces())}")
    try:
        from scapy.config import conf
        conf.use_pcap = True
        import scapy.layers.l2  # noqa: F401 - registers link types (no per-packet dissection is done)
        from scapy.arch.libpcap import L2pcapListenSocket
    except Exception as e:  # noqa: BLE001 - scapy/libpcap missing is a set-up problem to state plainly
        raise LiveError(f"live capture needs scapy with libpcap (apt-get install libpcap0.8): {e}") from None
    try:
        sock = L2pcapListenSocket(iface=iface, filter=None)
    except (OSError, PermissionError) as e:
        msg = str(e)
        if "ermission" in msg or "not permitted" in msg:
            raise LiveError(f"no permission to capture on {iface}: run as root or grant CAP_NET_RAW "
                            f"(setcap cap_net_raw,cap_net_admin=eip $(readlink -f $(which python3)))") from None
        raise LiveError(f"cannot capture on {iface}: {msg}") from None
    if bpf:
        try:
            sock.pcap_fd.setfilter(bpf)
        except Exception as e:  # noqa: BLE001 - scapy raises its own exception types for BPF errors
            sock.close()
            raise LiveError(f"bad BPF filter {bpf!r}: {e}") from None
    return sock


def kernel_stats(sock) -> tuple[int, int, int] | None:
    """(received, dropped by kernel, dropped by interface) from pcap_stats, when available."""
    try:
        from ctypes import byref

        from scapy.libs.winpcapy import pcap_stat, pcap_stats
        st = pcap_stat()
        if pcap_stats(sock.pcap_fd.pcap, byref(st)) == 0:
            return st.ps_recv, st.ps_drop, st.ps_ifdrop
    except Exception:  # noqa: BLE001 - statistics are best effort
        return None
    return None


class KeyLogFollower:
    """Reads what a growing SSLKEYLOGFILE gained since the last look."""

    def __init__(self, path: str):
        self.path = path
        self._pos = 0
        self._partial = ""
        self.text = ""

    def poll(self) -> str:
        try:
            with open(self.path, "r", encoding="utf-8", errors="replace") as fh:
                fh.seek(self._pos)
                new = fh.read()
                self._pos = fh.tell()
        except FileNotFoundError:
            return ""
        if not new:
            return ""
        new = self._partial + new
        complete, _, self._partial = new.rpartition("\n")
        if not complete:
            return ""
        self.text += complete + "\n"
        return complete + "\n"


def run_live(iface: str, *, bpf: str = "tcp", options: Options | None = None, keylog_path: str | None = None,
             write_path: str | None = None, count: int | None = None, duration: float | None = None,
             key_delay: float | None = None,
             on_handshake: Callable | None = None, on_close: Callable | None = None) -> LiveStats:
    """Capture until ``count`` packets, ``duration`` seconds, or SIGINT/SIGTERM; report as we go."""
    options = options or Options()
    stats = LiveStats()
    follower = None
    if keylog_path:
        from .decrypt import KeyLog
        follower = KeyLogFollower(keylog_path)
        if options.keylog is None:
            options.keylog = KeyLog()
    if key_delay is None:
        key_delay = 1.0 if follower else 0.0

    def handshake(report):
        stats.handshakes += 1
        if on_handshake:
            on_handshake(report)
    options.on_handshake = handshake
    analyzer = Analyzer(options)
    sock = open_socket(iface, bpf)
    linktype = sock.pcap_fd.datalink()
    writer = fh = None
    if write_path:
        fh = open(write_path, "wb")
        writer = PcapngWriter(fh, linktype, interface=iface)
    defrag = IpDefragmenter()
    pending: collections.deque = collections.deque()
    stop = {"now": False}

    def _stop(signum, frame):  # noqa: ARG001
        stop["now"] = True
    old_int = signal.signal(signal.SIGINT, _stop)
    old_term = signal.signal(signal.SIGTERM, _stop)

    def emit(reports):
        for r in reports:
            stats.connections += 1
            if not r.handshake_complete:
                stats.incomplete += 1
            if on_close:
                on_close(r)

    def add_keys():
        if follower is None:
            return
        new = follower.poll()
        if new:
            from .decrypt import KeyLog
            analyzer.feed_secrets(KeyLog.from_bytes(new.encode(), source=keylog_path))

    def drain(now: float, everything: bool = False):
        add_keys()
        while pending and (everything or now - pending[0][0] >= key_delay):
            _, item = pending.popleft()
            emit(analyzer.feed(item))

    deadline = None if duration is None else time.monotonic() + duration
    frame = 0
    try:
        while not stop["now"]:
            if deadline is not None and time.monotonic() >= deadline:
                break
            if count is not None and stats.packets >= count:
                break
            ready = sock.select([sock], 0.1)
            if ready:
                cls, data, ts = sock.recv_raw()
                if data is not None:
                    frame += 1
                    stats.packets += 1
                    if writer is not None:
                        writer.packet(ts, data)
                    item = decode_frame(linktype, data, ts, frame, defrag)
                    if defrag.notes:     # expired/evicted fragments: report, do not lose them
                        for note in defrag.notes:
                            pending.append((time.monotonic(), note))
                        defrag.notes.clear()
                    if type(item) is Segment:
                        stats.tcp_segments += 1
                        # the frame buffer is reused by nobody, but keep payloads independent of it
                        item.payload = bytes(item.payload)
                        pending.append((time.monotonic(), item))
                    elif type(item) is Datagram:         # QUIC (with a filter that lets UDP in)
                        pending.append((time.monotonic(), item))
                    elif isinstance(item, CaptureNote):
                        pending.append((time.monotonic(), item))
            drain(time.monotonic())
        # flush: wait a moment for the last keys, then everything left
        if follower is not None:
            time.sleep(min(key_delay, 0.5))
        for note in defrag.flush():
            pending.append((time.monotonic(), note))
        drain(time.monotonic(), everything=True)
        emit(analyzer.finish())
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        ks = kernel_stats(sock)
        if ks is not None:
            stats.kernel_received, stats.kernel_dropped, stats.interface_dropped = ks
        sock.close()
        if writer is not None:
            if follower is not None and follower.text:
                writer.secrets(follower.text.encode())
            writer.flush()
            fh.close()
    return stats
