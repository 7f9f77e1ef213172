"""Turn decoded models into JSON-ready values (edge-neutral: used by JSON and notebook output)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import ipaddress
from typing import Any


def to_jsonable(obj: Any) -> Any:
    """Dataclasses become dicts (fields starting with '_' skipped), bytes hex, enums ints."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return obj.value if not isinstance(obj.value, enum.Enum) else to_jsonable(obj.value)
    if isinstance(obj, (int, float)):
        return obj
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "to_json"):
            return obj.to_json()
        return {f.name: to_jsonable(getattr(obj, f.name))
                for f in dataclasses.fields(obj) if not f.name.startswith("_")}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (datetime.datetime, datetime.date)):
        return obj.isoformat()
    if isinstance(obj, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network,
                        ipaddress.IPv6Network)):
        return str(obj)
    return str(obj)
