"""JSON lines in and out: how the command line shows values and reads them back.

JSON cannot hold everything flume stores: bytes are written as ``{"$base64": "..."}`` and the
floats NaN, Infinity and -Infinity as ``{"$float": "NaN"}``. :func:`dumps` is for display and
always writes standard JSON; :func:`dumps_exact` writes a line that :func:`untag` turns back
into exactly the value, or refuses (:class:`NotJson`).
"""

from __future__ import annotations

import base64
import json
import math
import sys
from typing import Any

__all__ = [
    "BYTES_KEY",
    "FLOAT_KEY",
    "FLOAT_NAMES",
    "LineWriter",
    "NotJson",
    "dumps",
    "dumps_exact",
    "untag",
]

#: The key that stands for bytes in JSON output: ``{"$base64": "aGk="}``.
BYTES_KEY = "$base64"
#: The key that stands for a float JSON cannot hold: ``{"$float": "NaN"}``.
FLOAT_KEY = "$float"
#: The spellings of the floats JSON cannot hold, as ``float()`` reads them back.
FLOAT_NAMES = ("NaN", "Infinity", "-Infinity")


class NotJson(Exception):
    """Raised by :func:`dumps_exact` for what JSON lines cannot hold exactly (``what`` says
    what it is)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def _float_name(value: float) -> str:
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def _jsonable(value: Any, strict: bool, base64_bytes: bool, tag_floats: bool) -> Any:
    """``value`` with bytes as ``{"$base64": ...}`` (when ``base64_bytes``), NaN and the
    infinities as ``{"$float": ...}`` (when ``tag_floats``) and, unless ``strict``, non-string
    dict keys as strings. ``strict`` raises :class:`NotJson` for what JSON cannot hold exactly,
    and for a dict of the user's that would read back as a tag."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        if not tag_floats:
            raise NotJson(f"the float {_float_name(value)}")
        return {FLOAT_KEY: _float_name(value)}
    if isinstance(value, list):
        return [_jsonable(v, strict, base64_bytes, tag_floats) for v in value]
    if isinstance(value, dict):
        if strict and _reads_as_tag(value, base64_bytes, tag_floats):
            raise NotJson(f"a dict that reads back as a tagged value ({value!r:.40})")
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                if strict:
                    raise NotJson(f"a dict key of type {type(k).__name__} ({k!r:.40})")
                # As json.dumps shows them: 1 -> "1", None -> "null"; a tuple key as its JSON.
                k = json.dumps(_jsonable(k, False, True, True), ensure_ascii=False)
            out[k] = _jsonable(v, strict, base64_bytes, tag_floats)
        return out
    if isinstance(value, (bytes, bytearray, memoryview)):
        if not base64_bytes:
            raise NotJson(f"bytes ({bytes(value)[:20]!r})")
        return {BYTES_KEY: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, tuple):
        return [_jsonable(v, strict, base64_bytes, tag_floats) for v in value]
    raise NotJson(f"a value of type {type(value).__name__}")


def _reads_as_tag(value: dict[Any, Any], base64_bytes: bool, tag_floats: bool) -> bool:
    if len(value) != 1:
        return False
    return (base64_bytes and isinstance(value.get(BYTES_KEY), str)) or (
        tag_floats and isinstance(value.get(FLOAT_KEY), str)
    )


def _bytes_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {BYTES_KEY: base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: Any, indent: int | None = None) -> str:
    """JSON for display, always standard: bytes as ``{"$base64": ...}``, NaN and the
    infinities as ``{"$float": ...}``, other keys as strings."""
    try:
        return json.dumps(value, ensure_ascii=False, default=_bytes_default, allow_nan=False,
                          indent=indent)
    except (TypeError, ValueError):
        return json.dumps(_jsonable(value, False, True, True), ensure_ascii=False, indent=indent)


def dumps_exact(value: Any, base64_bytes: bool, tag_floats: bool = False) -> str:
    """One JSON line that loads back to exactly ``value`` (through :func:`untag` with the same
    flags), or :class:`NotJson`."""
    return json.dumps(_jsonable(value, True, base64_bytes, tag_floats), ensure_ascii=False)


def untag(value: Any, base64_bytes: bool, tag_floats: bool) -> Any:
    """Undo :func:`dumps_exact`'s tags: single-key dicts ``{"$base64": ...}`` become bytes
    (with ``base64_bytes``) and ``{"$float": "NaN"}`` floats (with ``tag_floats``), anywhere in
    ``value``.

    Raises:
        ValueError: a tag that holds no base64, or a ``$float`` other than NaN/±Infinity.
    """
    if isinstance(value, list):
        return [untag(v, base64_bytes, tag_floats) for v in value]
    if isinstance(value, dict):
        if base64_bytes and len(value) == 1 and isinstance(value.get(BYTES_KEY), str):
            return base64.b64decode(value[BYTES_KEY], validate=True)
        if tag_floats and len(value) == 1 and isinstance(value.get(FLOAT_KEY), str):
            if value[FLOAT_KEY] not in FLOAT_NAMES:
                raise ValueError(f"{FLOAT_KEY!r} holds {value[FLOAT_KEY]!r}, not one of "
                                 f"{', '.join(FLOAT_NAMES)}")
            return float(value[FLOAT_KEY])
        return {k: untag(v, base64_bytes, tag_floats) for k, v in value.items()}
    return value


class LineWriter:
    """Buffered lines to stdout; ``flush_each`` for live output."""

    def __init__(self, flush_each: bool = False) -> None:
        self._stream = sys.stdout
        self._flush_each = flush_each

    def line(self, text: str) -> None:
        self._stream.write(text)
        self._stream.write("\n")
        if self._flush_each:
            self._stream.flush()

    def close(self) -> None:
        self._stream.flush()
