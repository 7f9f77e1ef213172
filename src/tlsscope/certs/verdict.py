"""ChainCheck: the result of checking one certificate chain, as the report carries it."""

from __future__ import annotations

from dataclasses import dataclass

from ..findings import Finding, Severity

OK = "ok"
FAILED = "failed"
NOT_VISIBLE = "not_visible"
ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class ChainCheck:
    status: str                     # "ok" | "failed" | "not_visible" | "absent"
    openssl_status: str             # OpenSSL 3's text for its first error; "ok"; "" when not checked
    path: tuple[str, ...]           # RFC 4514 subjects, leaf to anchor, as built
    findings: tuple[Finding, ...]

    @property
    def failure(self) -> str:
        """Why a failed chain failed: OpenSSL's words when its verifier fails it too, else the code of the
        most severe finding (a revoked OCSP staple: OpenSSL's verifier does not read OCSP)."""
        if self.status != FAILED:
            return ""
        if self.openssl_status and self.openssl_status != OK:
            return self.openssl_status
        worst = max(self.findings, key=lambda f: f.severity, default=None)
        return worst.code if worst is not None else FAILED

    def to_json(self) -> dict:
        return {"status": self.status, "openssl_status": self.openssl_status,
                "path": list(self.path), "findings": [f.to_json() for f in self.findings]}


def not_visible(reason: str) -> ChainCheck:
    """The certificates were sent but cannot be seen (e.g. TLS 1.3 without the key log)."""
    return ChainCheck(NOT_VISIBLE, "", (), (Finding(Severity.INFO, "chain_not_visible", reason),))


def absent(reason: str) -> ChainCheck:
    """No certificate was sent (e.g. no client certificate)."""
    return ChainCheck(ABSENT, "", (), (Finding(Severity.INFO, "chain_absent", reason),))
