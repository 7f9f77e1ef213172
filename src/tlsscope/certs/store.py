"""Loading trust anchors (--ca) and CRLs (--crl) from PEM bundles, DER files or directories."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .chain import CertInfo
from .names import name_key

_SHA256 = hashes.SHA256()


class CertStoreError(Exception):
    """A --ca or --crl input that cannot be used; the message is one line naming the file."""


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file())
    return [path]


def _load_all(paths: Sequence[str | os.PathLike], what: str,
              from_pem: Callable[[bytes], list], from_der: Callable[[bytes], object]) -> list:
    items: list = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CertStoreError(f"{path}: no such file or directory")
        files = _files(path)
        found_before = len(items)
        for file in files:
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise CertStoreError(f"{file}: cannot read: {exc.strerror or exc}") from None
            try:
                if b"-----BEGIN" in data:
                    items.extend(from_pem(data))
                elif data.strip():
                    items.append(from_der(data))
            except ValueError as exc:
                if path.is_dir():      # a directory may hold unrelated files (hash links, README)
                    continue
                reason = str(exc).splitlines()[0] if str(exc) else "not PEM or DER"
                raise CertStoreError(f"{file}: not a {what} in PEM or DER: {reason}") from None
        if len(items) == found_before:
            raise CertStoreError(f"{path}: contains no {what}")
    return items


def _checked_crl(crl: x509.CertificateRevocationList) -> x509.CertificateRevocationList:
    """Touch what the checks read, so that a bad CRL fails here, naming its file."""
    try:
        crl.issuer, crl.last_update_utc, crl.next_update_utc, list(crl.extensions)
        for entry in crl:
            entry.serial_number, list(entry.extensions)
    except Exception as exc:   # noqa: BLE001 - cryptography's parse errors are not all ValueError
        raise ValueError(str(exc) or type(exc).__name__) from None
    return crl


def _der_crl(data: bytes) -> x509.CertificateRevocationList:
    return _checked_crl(x509.load_der_x509_crl(data))


def _pem_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    marker = b"-----BEGIN X509 CRL-----"
    crls = []
    for part in data.split(marker)[1:]:
        crls.append(_checked_crl(x509.load_pem_x509_crl(marker + part)))
    if not crls:
        raise ValueError("no X509 CRL block")
    return crls


def _pem_certs(data: bytes) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError("no CERTIFICATE block (a key or a CRL?)")
    return x509.load_pem_x509_certificates(data)


@dataclass(slots=True)
class TrustStore:
    anchors: list[x509.Certificate]
    _infos: list[CertInfo] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, paths: Sequence[str | os.PathLike]) -> "TrustStore":
        if not paths:
            raise CertStoreError("no CA file given")
        certs = _load_all(paths, "certificate", _pem_certs, x509.load_der_x509_certificate)
        unique: dict[bytes, x509.Certificate] = {}
        for cert in certs:
            unique.setdefault(cert.fingerprint(_SHA256), cert)
        return cls(list(unique.values()))

    def infos(self) -> list[CertInfo]:
        """The anchors parsed for path building, once per store; unusable ones left out."""
        if self._infos is None:
            infos = []
            for cert in self.anchors:
                try:
                    infos.append(CertInfo.from_cert(cert, trusted=True))
                except Exception:   # noqa: BLE001 - an anchor cryptography cannot read cannot anchor
                    continue
            self._infos = infos
        return self._infos


@dataclass(slots=True)
class CrlSet:
    crls: list[x509.CertificateRevocationList]

    @classmethod
    def load(cls, paths: Sequence[str | os.PathLike]) -> "CrlSet":
        if not paths:
            raise CertStoreError("no CRL file given")
        return cls(_load_all(paths, "CRL", _pem_crls, _der_crl))

    def by_issuer(self, key: tuple) -> list[x509.CertificateRevocationList]:
        return [c for c in self.crls if name_key(c.issuer) == key]

