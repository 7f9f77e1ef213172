"""TLS handshake message, extension and certificate decoding (pure, no I/O)."""
