"""Data passed between the capture edge and the core.

Small, slotted dataclasses. The capture edge (``tlsscope.capture``) produces
these; the core (``tcp``, ``tls``, ``connection``) consumes them. Nothing here
knows about files, scapy or terminals.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str
    port: int

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(slots=True)
class Segment:
    """One TCP segment as seen on the wire (after IP reassembly)."""

    ts: float          # seconds since the epoch (float; ns precision is not needed downstream)
    frame: int         # 1-based frame number in the capture
    src: str           # IP address as text
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int         # TCP flags byte (FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10)
    payload: bytes     # may be a memoryview slice of the frame for speed


@dataclass(slots=True)
class Datagram:
    """One UDP datagram that may carry QUIC (the capture edge passes on only those)."""

    ts: float
    frame: int
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class DecryptionSecrets:
    """A pcapng Decryption Secrets Block (kept for the decryption work)."""

    secrets_type: int  # 0x544c534b = TLS key log
    data: bytes
    frame: int         # number of frames read before this block


@dataclass(frozen=True, slots=True)
class CaptureNote:
    """Something the capture reader wants the user to know (not fatal)."""

    frame: int
    code: str          # stable code, e.g. "capture_truncated", "ip_fragment_incomplete"
    message: str


# TCP flag bits
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
