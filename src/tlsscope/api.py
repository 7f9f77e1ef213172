"""The Python API: what the CLI, tests and notebooks use."""

from __future__ import annotations

import os
from typing import Iterable, Iterator, Sequence

from .pipeline import Options, analyze
from .report import ConnectionReport

PathLike = str | os.PathLike


def _paths(value) -> list:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    return list(value)


def make_options(*, keylog=None, rsa_key=None, ca=None, crl=None, hostname: str | None = None,
                 sni: str | None = None, host: str | None = None, port: int | None = None,
                 conn: int | None = None, on_plaintext=None, now=None, seclevel: int = 2,
                 partial_chain: bool = False, x509_strict: bool = False) -> Options:
    """Options from user-level arguments: paths (or already-loaded objects) for keys and CAs."""
    opts = Options(hostname=hostname, sni=sni, host=host, port=port, conn=conn,
                   on_plaintext=on_plaintext, now=now, security_level=seclevel, partial_chain=partial_chain,
                   x509_strict=x509_strict)
    if keylog is not None:
        from .decrypt import KeyLog
        if isinstance(keylog, KeyLog):
            opts.keylog = keylog
        else:
            kl = KeyLog()
            for p in _paths(keylog):
                kl.merge(KeyLog.from_file(p))
            opts.keylog = kl
    if rsa_key is not None:
        from .decrypt import RsaKeys
        opts.rsa_keys = rsa_key if isinstance(rsa_key, RsaKeys) else RsaKeys.load(_paths(rsa_key))
    if ca is not None:
        from .certs import TrustStore
        opts.trust = ca if isinstance(ca, TrustStore) else TrustStore.load(_paths(ca))
    if crl is not None:
        from .certs import CrlSet
        opts.crls = crl if isinstance(crl, CrlSet) else CrlSet.load(_paths(crl))
    return opts


def with_embedded_secrets(options: Options, path: PathLike) -> Options:
    """Options whose key log also holds the capture's pcapng Decryption Secrets Blocks.

    Secrets are collected before the packets are read, so a DSB written after the
    packets it unlocks (as ``tlsscope live -w`` does) still decrypts them.
    """
    from .capture.prescan import find_decryption_secrets
    from .pipeline import TLS_KEYLOG_SECRETS

    blocks = [b for b in find_decryption_secrets(path) if b.secrets_type == TLS_KEYLOG_SECRETS]
    if not blocks:
        return options
    import dataclasses

    from .decrypt import KeyLog
    keylog = KeyLog()
    if options.keylog is not None:
        keylog.merge(options.keylog)
    for b in blocks:
        keylog.merge(KeyLog.from_bytes(b.data, source=f"{path}: Decryption Secrets Block"))
    return dataclasses.replace(options, keylog=keylog)


def read(path: PathLike, options: Options | None = None, **kwargs) -> Iterator[ConnectionReport]:
    """Every TLS connection in the capture at ``path``, as reports, in the order they end.

    Keyword arguments are those of :func:`make_options` (``keylog=``, ``ca=``, ``crl=``,
    ``rsa_key=``, ``hostname=``, ``seclevel=``, ``partial_chain=``, ``x509_strict=``, filters ``sni=``, ``host=``, ``port=``, ``conn=``).
    Raises :class:`tlsscope.capture.CaptureError` for files that cannot be read.
    """
    from .capture import open_capture

    if options is None:
        options = make_options(**kwargs)
    reader = open_capture(path)
    try:
        yield from analyze(reader, with_embedded_secrets(options, path))
    finally:
        reader.close()


class Reports(list):
    """A list of reports that shows itself as a table of connections in Jupyter."""

    def _repr_html_(self) -> str:
        from .render.html import reports_html
        return reports_html(self)


def read_all(path: PathLike, **kwargs) -> Reports:
    """``list(read(...))`` sorted by connection number: handy in notebooks."""
    return Reports(sorted(read(path, **kwargs), key=lambda r: r.id))


def analyze_segments(items: Iterable, **kwargs) -> Iterator[ConnectionReport]:
    """Reports from capture items produced elsewhere (live capture, tests)."""
    return analyze(items, make_options(**kwargs))


__all__: Sequence[str] = ["read", "read_all", "make_options", "analyze_segments", "ConnectionReport", "Options"]
