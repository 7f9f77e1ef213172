"""Facts read from decoded hellos: the few extension values every output needs.

Kept apart from the decoders so that reports, fingerprints and findings ask the
same questions the same way.
"""

from __future__ import annotations

from typing import Any, Sequence

# Extension types (IANA)
SERVER_NAME, SUPPORTED_GROUPS, EC_POINT_FORMATS, SIGNATURE_ALGORITHMS = 0, 10, 11, 13
ALPN, ENCRYPT_THEN_MAC, EXTENDED_MASTER_SECRET, SESSION_TICKET = 16, 22, 23, 35
PRE_SHARED_KEY, SUPPORTED_VERSIONS, KEY_SHARE, RENEGOTIATION_INFO = 41, 43, 51, 0xFF01
HEARTBEAT, STATUS_REQUEST, EARLY_DATA = 15, 5, 42


def extension(msg: Any, ext_type: int):
    """The first Extension of ``ext_type`` in a hello, or None."""
    for ext in getattr(msg, "extensions", ()) or ():
        if ext.type == ext_type:
            return ext
    return None


def has_extension(msg: Any, ext_type: int) -> bool:
    return extension(msg, ext_type) is not None


def extension_types(msg: Any) -> list[int]:
    return [e.type for e in getattr(msg, "extensions", ()) or ()]


def _value(msg: Any, ext_type: int):
    ext = extension(msg, ext_type)
    return None if ext is None else ext.value


def server_name(ch: Any) -> str | None:
    v = _value(ch, SERVER_NAME)
    if v is None:
        return None
    for item in getattr(v, "server_name_list", ()) or ():
        name_type = getattr(item, "name_type", 0)
        host = getattr(item, "host_name", None)
        if name_type == 0 and host is not None:
            return host if isinstance(host, str) else bytes(host).decode("utf-8", "replace")
    return None


def alpn_protocols(msg: Any) -> list[bytes]:
    v = _value(msg, ALPN)
    if v is None:
        return []
    return [bytes(p) for p in getattr(v, "protocol_name_list", ()) or ()]


def alpn_text(protocols: Sequence[bytes]) -> list[str]:
    return [p.decode("utf-8", "backslashreplace") for p in protocols]


def supported_versions(ch: Any) -> list[int]:
    v = _value(ch, SUPPORTED_VERSIONS)
    if v is None:
        return []
    versions = getattr(v, "versions", None)
    if versions is not None:
        return list(versions)
    sel = getattr(v, "selected_version", None)
    return [sel] if sel is not None else []


def supported_groups(ch: Any) -> list[int]:
    v = _value(ch, SUPPORTED_GROUPS)
    return list(getattr(v, "named_group_list", ()) or ()) if v is not None else []


def ec_point_formats(ch: Any) -> list[int]:
    v = _value(ch, EC_POINT_FORMATS)
    return list(getattr(v, "ec_point_format_list", ()) or ()) if v is not None else []


def signature_algorithms(msg: Any) -> list[int]:
    v = _value(msg, SIGNATURE_ALGORITHMS)
    return list(getattr(v, "supported_signature_algorithms", ()) or ()) if v is not None else []


def key_share_group(sh: Any) -> int | None:
    """Group of the server's key share (ServerHello) or the HRR's selected_group."""
    v = _value(sh, KEY_SHARE)
    if v is None:
        return None
    share = getattr(v, "server_share", None)
    if share is not None:
        return getattr(share, "group", None)
    return getattr(v, "selected_group", None)


def client_key_share_groups(ch: Any) -> list[int]:
    v = _value(ch, KEY_SHARE)
    if v is None:
        return []
    return [getattr(s, "group", None) for s in getattr(v, "client_shares", ()) or ()]
