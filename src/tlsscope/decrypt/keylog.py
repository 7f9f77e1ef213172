"""NSS key log files (SSLKEYLOGFILE) as written by OpenSSL, NSS, BoringSSL, Go,
rustls, curl, browsers, and as carried in pcapng Decryption Secrets Blocks.

Format: ``<LABEL> <client_random hex> <secret hex>`` per line, ``#`` comments;
``RSA <first 8 bytes of the encrypted premaster, hex> <premaster hex>``.
Malformed lines are collected in :attr:`KeyLog.problems`, never raised.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable

__all__ = ["KeyLog", "LABELS"]

_MAX_PROBLEMS = 200   # a file that is not a key log at all should not flood the report

# label -> allowed secret lengths in bytes
LABELS: dict[str, tuple[int, ...]] = {
    "CLIENT_RANDOM": (48,),                      # TLS <= 1.2 master secret
    "PMS_CLIENT_RANDOM": (48,),                  # NSS/Wireshark: premaster by client random
    "CLIENT_EARLY_TRAFFIC_SECRET": (32, 48, 64),
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET": (32, 48, 64),
    "SERVER_HANDSHAKE_TRAFFIC_SECRET": (32, 48, 64),
    "CLIENT_TRAFFIC_SECRET_0": (32, 48, 64),
    "SERVER_TRAFFIC_SECRET_0": (32, 48, 64),
    "EARLY_EXPORTER_SECRET": (32, 48, 64),
    "EXPORTER_SECRET": (32, 48, 64),
}


# Labels some implementations write for the standard ones: the illustrated DTLS 1.3 exchange
# (dtls.xargs.org) logs its first application secrets without the "_0".
_ALIASES = {"CLIENT_TRAFFIC_SECRET": "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET": "SERVER_TRAFFIC_SECRET_0"}


def _hex(text: str) -> bytes | None:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


# Secrets of one client random are packed into one bytes object, entries of
# <label index u8> <length u8> <secret>, in the order they were first logged: a dict per
# random (or a bytes object per secret) cost about 900 bytes per connection, which made the
# key log the largest thing in memory for big captures.
_LABEL_NAMES: tuple[str, ...] = tuple(LABELS)
_LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(_LABEL_NAMES)}


def _unpack(packed: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    i, n = 0, len(packed)
    while i < n:
        size = packed[i + 1]
        out[_LABEL_NAMES[packed[i]]] = packed[i + 2:i + 2 + size]
        i += 2 + size
    return out


def _pack(secrets: dict[str, bytes]) -> bytes:
    return b"".join(bytes((_LABEL_INDEX[label], len(secret))) + secret for label, secret in secrets.items())


class KeyLog:
    """Secrets by client random (and RSA premasters by ciphertext prefix)."""

    __slots__ = ("_by_random", "_frozen", "_rsa", "_sessions", "problems", "_count")

    def __init__(self) -> None:
        self._by_random: dict[bytes, bytes] = {}     # client random -> packed secrets (see _pack)
        self._frozen: _Frozen | None = None           # more of the same, after freeze()
        self._rsa: dict[bytes, bytes] = {}
        # master secrets learnt while decrypting (e.g. with --rsa-key), by session id or ticket
        self._sessions: dict[bytes, tuple[bytes, str]] = {}
        self.problems: list[str] = []
        self._count = 0

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "KeyLog":
        path = Path(path)
        log = cls()
        with open(path, "rb") as f:     # line by line: never the whole file (and its lines) at once
            log._add_lines(f, path.name)
        return log

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "") -> "KeyLog":
        log = cls()
        log._add_lines(io.BytesIO(bytes(data)), source)
        return log

    def add_text(self, text: str, source: str = "") -> None:
        self._add_lines((text,), source)

    def _add_lines(self, chunks: Iterable[str | bytes], source: str) -> None:
        where = source or "keylog"
        dropped = 0
        lineno = 0
        for chunk in chunks:
            if isinstance(chunk, bytes):
                # key logs are ASCII; latin-1 never fails and keeps odd bytes visible in problems
                chunk = chunk.decode("latin-1")
            # str.splitlines() also breaks at \r, \x0c, \x85, ...: line numbers as for the whole text
            for raw in chunk.splitlines():
                lineno += 1
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                problem = self._add_line(line)
                if problem:
                    if len(self.problems) < _MAX_PROBLEMS:
                        self.problems.append(f"{where}:{lineno}: {problem}")
                    else:
                        dropped += 1
        if dropped:
            self.problems.append(f"{where}: {dropped} more malformed lines not listed")

    def _add_line(self, line: str) -> str | None:
        fields = line.split()
        label = fields[0]
        if label == "RSA":
            if len(fields) != 3:
                return f"RSA line needs 2 values, has {len(fields) - 1}"
            prefix, premaster = _hex(fields[1]), _hex(fields[2])
            if prefix is None or len(prefix) != 8:
                return "RSA: the encrypted premaster prefix must be 8 bytes of hex"
            if premaster is None or len(premaster) != 48:
                return "RSA: the premaster secret must be 48 bytes of hex"
            return self._store_rsa(prefix, premaster)
        label = _ALIASES.get(label, label)
        lengths = LABELS.get(label)
        if lengths is None:
            return f"unknown label {label[:40]}"
        if len(fields) != 3:
            return f"{label} line needs 2 values, has {len(fields) - 1}"
        client_random, secret = _hex(fields[1]), _hex(fields[2])
        if client_random is None or len(client_random) != 32:
            return f"{label}: client random must be 32 bytes of hex"
        if secret is None or len(secret) not in lengths:
            return f"{label}: secret must be {' or '.join(map(str, lengths))} bytes of hex"
        return self._store(client_random, label, secret)

    def _packed(self, client_random: bytes) -> bytes | None:
        packed = self._by_random.get(client_random)
        if packed is None and self._frozen is not None:
            packed = self._frozen.get(client_random)
        return packed

    def _items(self):
        """(client random, packed secrets) pairs, each random once."""
        yield from self._by_random.items()
        if self._frozen is not None:
            mine = self._by_random
            yield from ((r, p) for r, p in self._frozen.items() if r not in mine)

    def freeze(self) -> None:
        """Move the secrets by client random into a few flat bytes objects, searched by bisection.

        For processes forked after loading (``read -j``): a lookup in a dict writes the reference
        count of the entry it returns, which makes the kernel copy that page for the child, so each
        worker ended up with its own copy of the whole key log. Lookups in the frozen form write
        nothing, and the pages stay shared.
        """
        if self._by_random:
            self._frozen = _Frozen(sorted(self._items()))
            self._by_random = {}

    def _store(self, client_random: bytes, label: str, secret: bytes) -> str | None:
        packed = self._packed(client_random)
        if packed is None:
            self._by_random[client_random] = bytes((_LABEL_INDEX[label], len(secret))) + secret
            self._count += 1
            return None
        entry = _unpack(packed)
        old = entry.get(label)
        if old == secret:
            return None
        entry[label] = secret
        self._by_random[client_random] = _pack(entry)
        if old is None:
            self._count += 1
            return None
        return f"{label} for client random {client_random.hex()[:16]}… replaced by a different value"

    def _store_rsa(self, prefix: bytes, premaster: bytes) -> str | None:
        old = self._rsa.get(prefix)
        if old == premaster:
            return None
        self._rsa[prefix] = premaster
        if old is None:
            self._count += 1
            return None
        return f"RSA premaster for {prefix.hex()} replaced by a different value"

    def merge(self, other: "KeyLog") -> None:
        mine = self._by_random
        for client_random, packed in other._items():
            if self._packed(client_random) is None:   # the common case: share the immutable bytes
                mine[client_random] = packed
                self._count += len(_unpack(packed))
                continue
            for label, secret in _unpack(packed).items():
                problem = self._store(client_random, label, secret)
                if problem:
                    self.problems.append(problem)
        for prefix, premaster in other._rsa.items():
            problem = self._store_rsa(prefix, premaster)
            if problem:
                self.problems.append(problem)
        self.problems.extend(p for p in other.problems if p not in self.problems)
        for key, value in other._sessions.items():
            self._sessions.setdefault(key, value)

    def secrets_for(self, client_random: bytes) -> dict[str, bytes]:
        packed = self._packed(bytes(client_random))
        return {} if packed is None else _unpack(packed)

    def secret(self, client_random: bytes, label: str) -> bytes | None:
        """``secrets_for(client_random).get(label)`` without building the dict."""
        packed = self._packed(bytes(client_random))
        if packed is None:
            return None
        want = _LABEL_INDEX.get(label)
        i, n = 0, len(packed)
        while i < n:
            size = packed[i + 1]
            if packed[i] == want:
                return packed[i + 2:i + 2 + size]
            i += 2 + size
        return None

    def rsa_premaster(self, encrypted_premaster_prefix: bytes) -> bytes | None:
        return self._rsa.get(bytes(encrypted_premaster_prefix[:8]))

    def add_session(self, key: bytes, master: bytes, method: str | None) -> None:
        """Remember a TLS <= 1.2 session's master secret for abbreviated handshakes."""
        if len(self._sessions) < 100_000:
            self._sessions[bytes(key)] = (master, method or "keylog")

    def session_master(self, key: bytes) -> tuple[bytes, str] | None:
        return self._sessions.get(bytes(key))

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        randoms = len(self._by_random) + (len(self._frozen) if self._frozen is not None else 0)
        return f"KeyLog({randoms} client randoms, {len(self._rsa)} RSA, {self._count} secrets)"


class _Frozen:
    """Sorted 32-byte client randoms, end offsets and packed secrets, each in one object."""

    __slots__ = ("randoms", "ends", "blob", "n")

    def __init__(self, items: list[tuple[bytes, bytes]]):
        from array import array
        self.randoms = b"".join(r for r, _ in items)
        self.blob = b"".join(p for _, p in items)
        ends = array("Q")
        end = 0
        for _, p in items:
            end += len(p)
            ends.append(end)
        self.ends = ends
        self.n = len(items)

    def __len__(self) -> int:
        return self.n

    def get(self, client_random: bytes) -> bytes | None:
        if len(client_random) != 32:
            return None
        randoms = self.randoms
        lo, hi = 0, self.n
        while lo < hi:
            mid = (lo + hi) >> 1
            if randoms[mid * 32:mid * 32 + 32] < client_random:
                lo = mid + 1
            else:
                hi = mid
        if lo == self.n or randoms[lo * 32:lo * 32 + 32] != client_random:
            return None
        return self.blob[self.ends[lo - 1] if lo else 0:self.ends[lo]]

    def items(self):
        randoms, blob, ends = self.randoms, self.blob, self.ends
        start = 0
        for i in range(self.n):
            yield randoms[i * 32:i * 32 + 32], blob[start:ends[i]]
            start = ends[i]
