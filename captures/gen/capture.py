"""tcpdump on lo, and the few facts the generator reads back from its own capture."""

from __future__ import annotations

import shutil
import signal
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from .proc import Background, StepFailed

# libpcap on lo hands packets over in blocks; wait this long after the last client before stopping.
FLUSH_DELAY = 1.6


class Tcpdump:
    """`tcpdump -i lo` restricted to the scenario's ports, started before any peer."""

    def __init__(self, out: Path, ports: list[int], *, snaplen: int = 0, udp: bool = False):
        self.out = out
        bpf = " or ".join(f"{'udp' if udp else 'tcp'} port {p}" for p in ports)
        self.cmd = [shutil.which("tcpdump") or "tcpdump", "-i", "lo", "-n", "--immediate-mode", "-U",
                    "-Z", "root", "-s", str(snaplen or 262144), "-w", str(out), bpf]
        self.proc: Background | None = None

    def __enter__(self) -> "Tcpdump":
        self.proc = Background(self.cmd, self.out.parent)
        try:
            self.proc.wait_output(b"listening on", 10.0, stream="stderr")
        except BaseException:
            self.proc.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(FLUSH_DELAY)
        assert self.proc is not None
        self.proc.stop(signal.SIGINT, grace=5.0)
        if exc[0] is None and not self.out.is_file():
            raise StepFailed(f"tcpdump wrote nothing:\n{self.proc.text()}")


@dataclass(frozen=True)
class Syn:
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int


def _packets(pcap: Path, proto: int = 6):
    """(src, sport, dst, dport, tcp flags, payload) per TCP packet (``proto`` 17: per UDP datagram, with
    flags None); pcap with Ethernet/cooked/raw links."""
    data = pcap.read_bytes()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise StepFailed(f"{pcap}: not a pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    pos = 24
    while pos + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[pos + 8:pos + 12])[0]
        frame = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        if linktype == 1:        # Ethernet (Linux lo)
            ethertype, ip = struct.unpack(">H", frame[12:14])[0], frame[14:]
        elif linktype == 113:    # Linux cooked
            ethertype, ip = struct.unpack(">H", frame[14:16])[0], frame[16:]
        else:                    # raw IP
            ethertype, ip = (0x86DD if frame[:1] and frame[0] >> 4 == 6 else 0x0800), frame
        if ethertype == 0x0800 and len(ip) >= 20 and ip[9] == proto:
            ihl, total = (ip[0] & 0x0F) * 4, struct.unpack(">H", ip[2:4])[0]
            src, dst, tcp = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20])), ip[ihl:total]
        elif ethertype == 0x86DD and len(ip) >= 40 and ip[6] == proto:
            total = 40 + struct.unpack(">H", ip[4:6])[0]
            src, dst, tcp = _ip6(ip[8:24]), _ip6(ip[24:40]), ip[40:total]
        else:
            continue
        if proto == 17:
            if len(tcp) >= 8:
                sport, dport = struct.unpack(">HH", tcp[:4])
                yield src, sport, dst, dport, None, tcp[8:]
            continue
        if len(tcp) < 20:
            continue
        sport, dport = struct.unpack(">HH", tcp[:4])
        yield src, sport, dst, dport, tcp[13], tcp[(tcp[12] >> 4) * 4:]


def read_syns(pcap: Path) -> list[Syn]:
    """The connection openings (SYN without ACK) in capture order."""
    return [Syn(src, sport, dst, dport) for src, sport, dst, dport, flags, _ in _packets(pcap)
            if flags & 0x02 and not flags & 0x10]


def read_udp_openers(pcap: Path, server_ports: set[int]) -> list[Syn]:
    """UDP flows (DTLS) in the order of their first client datagram: the TCP SYN's counterpart."""
    seen: dict[tuple, Syn] = {}
    for src, sport, dst, dport, _flags, _payload in _packets(pcap, 17):
        if dport in server_ports and (src, sport, dst, dport) not in seen:
            seen[(src, sport, dst, dport)] = Syn(src, sport, dst, dport)
    return list(seen.values())


@dataclass(frozen=True)
class RecordSeen:
    packet: int          # index of the packet holding the record's first byte
    side: str            # "client" | "server"
    content_type: int
    length: int
    head: bytes          # first bytes of the fragment (a plaintext alert's level and description)


def read_records(pcap: Path, server_ports: set[int]) -> list[list[RecordSeen]]:
    """TLS record headers per connection (in SYN order), both directions merged in capture order.

    Enough for the generator to learn the order of alerts, which is a race between the peers
    (who sends close_notify first). lo neither loses nor reorders, so payloads are concatenated as
    they come; a plaintext prefix (STARTTLS) is skipped up to the first handshake record."""
    conns: dict[tuple, int] = {}
    streams: list[dict[str, tuple[bytearray, list[tuple[int, int]]]]] = []
    for index, (src, sport, dst, dport, flags, payload) in enumerate(_packets(pcap)):
        side = "server" if sport in server_ports else "client"
        key = (src, sport, dst, dport) if side == "client" else (dst, dport, src, sport)
        if flags & 0x02 and not flags & 0x10:
            conns[key] = len(streams)
            streams.append({"client": (bytearray(), []), "server": (bytearray(), [])})
        if payload and key in conns:
            data, starts = streams[conns[key]][side]
            starts.append((len(data), index))   # stream offset where this packet's payload begins
            data.extend(payload)
    result = []
    for stream in streams:
        seen = []
        for side, (data, starts) in stream.items():
            hello = {"client": 1, "server": 2}[side]
            pos = next((i for i in range(len(data) - 5) if data[i] == 22 and data[i + 1] == 3
                        and data[i + 5] == hello), len(data))
            while pos + 5 <= len(data):
                ctype, length = data[pos], struct.unpack(">H", data[pos + 3:pos + 5])[0]
                packet = max(index for offset, index in starts if offset <= pos)
                seen.append(RecordSeen(packet, side, ctype, length, bytes(data[pos + 5:pos + 5 + min(length, 2)])))
                pos += 5 + length
        result.append(sorted(seen, key=lambda r: (r.packet, r.side)))
    return result


def read_dtls_records(pcap: Path, server_ports: set[int]) -> list[list[RecordSeen]]:
    """DTLS record headers (13 bytes, plaintext form) per UDP flow, in the order of read_udp_openers."""
    flows: dict[tuple, list[RecordSeen]] = {}
    for index, (src, sport, dst, dport, _flags, payload) in enumerate(_packets(pcap, 17)):
        side = "server" if sport in server_ports else "client"
        key = (src, sport, dst, dport) if side == "client" else (dst, dport, src, sport)
        seen = flows.setdefault(key, [])
        pos = 0
        while pos + 13 <= len(payload) and 20 <= payload[pos] <= 25:
            length = struct.unpack(">H", payload[pos + 11:pos + 13])[0]
            seen.append(RecordSeen(index, side, payload[pos], length, bytes(payload[pos + 13:pos + 13 + min(length, 2)])))
            pos += 13 + length
    return list(flows.values())


def _ip6(raw: bytes) -> str:
    import ipaddress
    return str(ipaddress.IPv6Address(raw))
