"""``--rsa-key``: recover the RSA key exchange premaster with the server's private key.

Works only for the static RSA key exchange (TLS_RSA_WITH_*), never for (EC)DHE
or TLS 1.3.  PKCS#1 v1.5; a wrong key or a non-RSA exchange yields None.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["RsaKeys"]


class RsaKeys:
    __slots__ = ("keys", "problems")

    def __init__(self, keys: list[rsa.RSAPrivateKey] | None = None) -> None:
        self.keys: list[rsa.RSAPrivateKey] = list(keys or [])
        self.problems: list[str] = []

    @classmethod
    def load(cls, paths) -> "RsaKeys":
        """PEM or DER RSA private keys (PKCS#1 or PKCS#8, unencrypted)."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        out = cls()
        for path in paths:
            path = Path(path)
            try:
                data = path.read_bytes()
            except OSError as exc:
                out.problems.append(f"{path}: {exc.strerror or exc}")
                continue
            key = None
            for loader in (serialization.load_pem_private_key, serialization.load_der_private_key):
                try:
                    key = loader(data, password=None)
                    break
                except (ValueError, TypeError):
                    continue
            if key is None:
                out.problems.append(f"{path}: not an unencrypted PEM/DER private key")
            elif not isinstance(key, rsa.RSAPrivateKey):
                out.problems.append(f"{path}: not an RSA key ({type(key).__name__})")
            else:
                out.keys.append(key)
        return out

    def decrypt_premaster(self, encrypted: bytes, client_version: int | None = None) -> bytes | None:
        """The 48-byte premaster, trying every key whose modulus fits the ciphertext.

        OpenSSL's implicit rejection turns a wrong key into random bytes rather
        than an error, so with several keys the one whose premaster starts with
        the ClientHello's version (RFC 5246 §7.4.7.1) is preferred.
        """
        fallback = None
        for key in self.keys:
            if (key.key_size + 7) // 8 != len(encrypted):
                continue
            try:
                premaster = key.decrypt(bytes(encrypted), padding.PKCS1v15())
            except ValueError:
                continue
            if len(premaster) != 48:
                continue
            if client_version is None or int.from_bytes(premaster[:2], "big") == client_version:
                return premaster
            fallback = fallback or premaster
        return fallback

    def __len__(self) -> int:
        return len(self.keys)
