"""Turn decoded models into JSON-ready values (edge-neutral: used by JSON and notebook output)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import ipaddress
from typing import Any, Callable

# How each type converts, decided once per type (JSON output converts tens of thousands of
# small dataclasses: the isinstance ladder and dataclasses.fields() per object dominated).
_CONVERTERS: dict[type, Callable[[Any], Any]] = {}
# Exactly these classes (not subclasses such as IntEnum) are already JSON values.
_PLAIN = frozenset((int, str, bool, float, type(None)))


def to_jsonable(obj: Any) -> Any:
    """Dataclasses become dicts (fields starting with '_' skipped), bytes hex, enums ints."""
    conv = _CONVERTERS.get(obj.__class__)
    if conv is None:
        conv = _converter(obj)
    return conv(obj)


def _same(obj: Any) -> Any:
    return obj


def _enum(obj: Any) -> Any:
    return obj.value if not isinstance(obj.value, enum.Enum) else to_jsonable(obj.value)


def _hex(obj: Any) -> str:
    return bytes(obj).hex()


def _dict(obj: dict) -> dict:
    return {str(k): to_jsonable(v) for k, v in obj.items()}


def _list(obj) -> list:
    # lists of code points are the common case: plain ints need no conversion
    plain = _PLAIN
    return [v if v.__class__ in plain else to_jsonable(v) for v in obj]


def _isoformat(obj) -> str:
    return obj.isoformat()


def _to_json(obj) -> Any:
    return obj.to_json()


def _dataclass(cls: type) -> Callable[[Any], dict]:
    names = tuple(f.name for f in dataclasses.fields(cls) if not f.name.startswith("_"))

    plain = _PLAIN

    def conv(obj) -> dict:
        d = {}
        for name in names:
            v = getattr(obj, name)
            d[name] = v if v.__class__ in plain else to_jsonable(v)
        return d
    return conv


def _converter(obj: Any) -> Callable[[Any], Any]:
    """The conversion for ``type(obj)``, in the order of the checks it replaces."""
    cls = obj.__class__
    if obj is None or isinstance(obj, (bool, str)):
        conv = _same
    elif isinstance(obj, enum.Enum):
        conv = _enum
    elif isinstance(obj, (int, float)):
        conv = _same
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        conv = _hex
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        conv = _to_json if hasattr(obj, "to_json") else _dataclass(cls)
    elif isinstance(obj, dict):
        conv = _dict
    elif isinstance(obj, (list, tuple, set, frozenset)):
        conv = _list
    elif isinstance(obj, (datetime.datetime, datetime.date)):
        conv = _isoformat
    elif isinstance(obj, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network,
                          ipaddress.IPv6Network)):
        conv = str
    else:
        conv = str
    if isinstance(obj, type) or "to_json" in getattr(obj, "__dict__", ()):
        return conv          # a class object, or an instance-level to_json: do not generalise
    _CONVERTERS[cls] = conv
    return conv
