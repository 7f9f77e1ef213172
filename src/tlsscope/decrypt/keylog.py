"""NSS key log files (SSLKEYLOGFILE) as written by OpenSSL, NSS, BoringSSL, Go,
rustls, curl, browsers, and as carried in pcapng Decryption Secrets Blocks.

Format: ``<LABEL> <client_random hex> <secret hex>`` per line, ``#`` comments;
``RSA <first 8 bytes of the encrypted premaster, hex> <premaster hex>``.
Malformed lines are collected in :attr:`KeyLog.problems`, never raised.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def _hex(text: str) -> bytes | None:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


class KeyLog:
    """Secrets by client random (and RSA premasters by ciphertext prefix)."""

    __slots__ = ("_by_random", "_rsa", "_sessions", "problems", "_count")

    def __init__(self) -> None:
        self._by_random: dict[bytes, dict[str, bytes]] = {}
        self._rsa: dict[bytes, bytes] = {}
        # master secrets learnt while decrypting (e.g. with --rsa-key), by session id or ticket
        self._sessions: dict[bytes, tuple[bytes, str]] = {}
        self.problems: list[str] = []
        self._count = 0

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "KeyLog":
        path = Path(path)
        return cls.from_bytes(path.read_bytes(), source=path.name)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "") -> "KeyLog":
        log = cls()
        # key logs are ASCII; latin-1 never fails and keeps odd bytes visible in problems
        log.add_text(bytes(data).decode("latin-1"), source)
        return log

    def add_text(self, text: str, source: str = "") -> None:
        where = source or "keylog"
        dropped = 0
        for lineno, raw in enumerate(text.splitlines(), 1):
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

    def _store(self, client_random: bytes, label: str, secret: bytes) -> str | None:
        entry = self._by_random.setdefault(client_random, {})
        old = entry.get(label)
        if old == secret:
            return None
        entry[label] = secret
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
        for client_random, secrets in other._by_random.items():
            for label, secret in secrets.items():
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
        return dict(self._by_random.get(bytes(client_random), {}))

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
        return f"KeyLog({len(self._by_random)} client randoms, {len(self._rsa)} RSA, {self._count} secrets)"
