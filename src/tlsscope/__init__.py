"""tlsscope: a passive TLS handshake inspector.

>>> import tlsscope
>>> for report in tlsscope.read("capture.pcapng", keylog="keys.txt", ca="ca.pem"):
...     print(report.id, report.sni, report.version_name, report.cipher_suite_name)
"""

__version__ = "0.1.0"

__all__ = ["read", "read_all", "make_options", "analyze_segments", "ConnectionReport", "to_dataframe",
           "__version__"]


def __getattr__(name: str):
    # Lazy: `import tlsscope.tls.records` must not pull in the whole pipeline.
    if name in ("read", "read_all", "make_options", "analyze_segments"):
        from . import api
        return getattr(api, name)
    if name == "ConnectionReport":
        from .report import ConnectionReport
        return ConnectionReport
    if name == "to_dataframe":
        from .table import to_dataframe
        return to_dataframe
    raise AttributeError(f"module 'tlsscope' has no attribute {name!r}")
