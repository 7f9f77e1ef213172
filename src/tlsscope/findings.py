"""Findings: what tlsscope tells a person about a connection, beyond the facts."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    def __str__(self) -> str:  # "high", as in JSON
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    code: str          # stable, snake_case: users' scripts match on it
    message: str       # one sentence a person can act on

    def to_json(self) -> dict:
        return {"severity": str(self.severity), "code": self.code, "message": self.message}
