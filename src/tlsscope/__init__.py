"""tlsscope: a passive TLS handshake inspector."""

__version__ = "0.1.0"
