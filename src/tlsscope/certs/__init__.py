"""Certificate chain checks against the user's trust anchors (sans I/O: bytes and times in)."""

from .check import check_chain
from .store import CertStoreError, CrlSet, TrustStore
from .verdict import ChainCheck, absent, not_visible

__all__ = ["check_chain", "TrustStore", "CrlSet", "CertStoreError", "ChainCheck", "not_visible", "absent"]
