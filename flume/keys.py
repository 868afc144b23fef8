"""Order-preserving byte encoding of index keys, in flume order.

``encode(a) < encode(b)`` (bytewise, as RocksDB compares keys) exactly when ``a`` sorts before
``b`` in **flume order** (QUERY.md, "Values and their order")::

    None < False < True < numbers < strings < bytes < lists < dicts < MISSING

Numbers compare by value whether int or float (``1 == 1.0``, ``-0.0 == 0.0``, NaN below every
other number and equal to itself, ints exact against floats); strings by code point; bytes
bytewise; lists element by element, a shorter prefix first; dicts as the list of their
``(key, value)`` items sorted by key. Flume-equal values encode to identical bytes.

Every encoding is self-delimiting and no encoding is a proper prefix of another, so a tuple is
encoded as the plain concatenation of its elements' encodings: a tuple's prefix is a byte prefix
and tuples compare element by element.

Format (one tag byte, then the body)::

    0x00        end of a list or dict (below every tag: a shorter list sorts first)
    0x10        None
    0x20 0x21   False, True
    0x30        negative number or NaN: 8 bytes ~(IEEE bits as int64), NaN as 8 zero
                bytes; 2 bytes r
    0x31        number >= 0 (0.0 and -0.0 included): 8 bytes IEEE bits, big-endian; 2 bytes r
    0x40        str: UTF-8 ('surrogatepass') escaped, then 0x00
    0x50        bytes: escaped, then 0x00
    0x60        list: the encodings of its items, then 0x00
    0x70        dict: encode(key) + encode(value) of each item sorted by those bytes, then 0x00
    0x80        MISSING

A number ``x`` is stored as ``f = float(x)`` (correctly rounded, so monotone) followed by the
exact remainder ``r = x - int(f)`` (0 for floats; ``|r| <= 2**10`` for 64-bit ints) as the
big-endian unsigned 16-bit ``r + 0x8000``. ``(f, r)`` orders exactly like ``x``: if two numbers
round to the same ``f`` (necessarily an integral float), their difference is the difference of
their remainders.

String and bytes content is escaped so that it never contains 0x00: ``0x00 -> 0x01 0x01`` and
``0x01 -> 0x01 0x02``; every other byte stands for itself. This keeps bytewise order, and the
single 0x00 terminator sorts a string before every longer string it is a prefix of.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any, Final, NoReturn

from flume.codec import MAX_DEPTH, depth_exceeds, describe, hashable, too_deep_message
from flume.errors import CorruptionError, EncodeError, InvalidArgumentError, InvalidTypeError

__all__ = [
    "MISSING",
    "SEQ_BYTES",
    "MissingType",
    "compare",
    "decode",
    "decode_tuple",
    "encode",
    "encode_tuple",
    "prefix_key",
    "seq_key",
    "seq_of",
    "successor",
    "type_hint",
    "type_range",
]


class MissingType:
    """The type of :data:`MISSING`, the one "this path does not exist" value.

    It is falsy, has the repr ``MISSING``, sorts after every other value, and stays the same
    object through ``copy``, ``deepcopy`` and ``pickle``.
    """

    __slots__ = ()
    _instance: MissingType | None = None

    def __new__(cls) -> MissingType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"  # pickle looks the module-level name up again: the same singleton

    def __copy__(self) -> MissingType:
        return self

    def __deepcopy__(self, memo: object) -> MissingType:
        return self


MISSING: Final[MissingType] = MissingType()

SEQ_BYTES: Final = 8
"""Seqs as keys: 8 bytes, big-endian, so that bytewise order is seq order. The log's keys are
these, and every index entry's key ends with its seq in this form (equal keys never collide)."""


def seq_key(seq: int) -> bytes:
    """The 8-byte form of ``seq``."""
    return seq.to_bytes(SEQ_BYTES, "big")


def seq_of(key: bytes) -> int:
    """The seq a key ends with (an index entry's key, or a log key)."""
    return int.from_bytes(key[-SEQ_BYTES:], "big")

# --- tags --------------------------------------------------------------------------------------

_END: Final = 0x00
_T_NONE: Final = 0x10
_T_FALSE: Final = 0x20
_T_TRUE: Final = 0x21
_T_NEG: Final = 0x30  # negative numbers and NaN
_T_POS: Final = 0x31  # numbers >= 0
_T_STR: Final = 0x40
_T_BYTES: Final = 0x50
_T_LIST: Final = 0x60
_T_DICT: Final = 0x70
_T_MISSING: Final = 0x80

_B_END: Final = b"\x00"
_B_NONE: Final = b"\x10"
_B_FALSE: Final = b"\x20"
_B_TRUE: Final = b"\x21"
_B_LIST: Final = b"\x60"
_B_DICT: Final = b"\x70"
_B_MISSING: Final = b"\x80"

_NUMBER_LEN: Final = 11  # tag + 8 bytes of float + 2 bytes of remainder
_R0: Final = 0x8000  # remainder 0, biased

_MIN_INT: Final = -(2**63)
_MAX_INT: Final = 2**64 - 1
_EXACT: Final = 2**53  # every int of magnitude <= 2**53 is exactly a double

_pack_number = struct.Struct(">BdH").pack  # tag, float, biased remainder (numbers >= 0)
_pack_ordered = struct.Struct(">BQH").pack  # tag, ordered bits, biased remainder (negatives)
_pack_d = struct.Struct(">d").pack
_unpack_d = struct.Struct(">d").unpack
_unpack_q = struct.Struct(">q").unpack
_pack_q = struct.Struct(">q").pack
_unpack_number = struct.Struct(">QH").unpack_from
_unpack_pos = struct.Struct(">dH").unpack_from

_ZERO: Final = _pack_number(_T_POS, 0.0, _R0)
_NAN: Final = _pack_ordered(_T_NEG, 0, _R0)

_TYPE_RANGES: Final[dict[str, tuple[bytes, bytes]]] = {
    "null": (b"\x10", b"\x11"),
    "boolean": (b"\x20", b"\x22"),
    "number": (b"\x30", b"\x32"),
    "string": (b"\x40", b"\x41"),
    "bytes": (b"\x50", b"\x51"),
    "array": (b"\x60", b"\x61"),
    "object": (b"\x70", b"\x71"),
    "undefined": (b"\x80", b"\x81"),
}

# --- encoding ----------------------------------------------------------------------------------


def _escape(b: bytes) -> bytes:
    """Escape content so that it holds no 0x00 byte, keeping bytewise order."""
    return b.replace(b"\x01", b"\x01\x02").replace(b"\x00", b"\x01\x01")


def _enc_str(s: str) -> bytes:
    try:
        b = s.encode()  # the argument-free call is the fastest
    except UnicodeEncodeError:  # lone surrogates: keep code-point order
        b = s.encode("utf-8", "surrogatepass")
    if 0 in b or 1 in b:
        b = _escape(b)
    return b"\x40" + b + b"\x00"


def _enc_bytes(b: bytes) -> bytes:
    if 0 in b or 1 in b:
        b = _escape(b)
    return b"\x50" + b + b"\x00"


def _enc_float(f: float) -> bytes:
    if f > 0.0:
        return _pack_number(_T_POS, f, _R0)
    if f < 0.0:
        # The IEEE bits of a negative double, read as int64, are negative and grow with the
        # magnitude; their complement is in [0, 2**63) and grows with the value.
        return _pack_ordered(_T_NEG, ~_unpack_q(_pack_d(f))[0], _R0)
    if f == 0.0:
        return _ZERO  # -0.0 too
    return _NAN


def _enc_int(x: int) -> bytes:
    if 0 <= x <= _EXACT:
        return _pack_number(_T_POS, x, _R0)  # struct converts the int to the exact double
    if -_EXACT <= x < 0:
        return _pack_ordered(_T_NEG, ~_unpack_q(_pack_d(x))[0], _R0)
    if _MIN_INT <= x <= _MAX_INT:
        f = float(x)  # correctly rounded, hence monotone; integral, so int(f) is exact
        r = x - int(f) + _R0
        if f > 0.0:
            return _pack_number(_T_POS, f, r)
        return _pack_ordered(_T_NEG, ~_unpack_q(_pack_d(f))[0], r)
    raise EncodeError(
        f"cannot encode the int {x}: out of the 64-bit range -2**63 .. 2**64-1 that flume stores"
    )


def _enc_none(_: None) -> bytes:
    return _B_NONE


def _enc_bool(b: bool) -> bytes:
    return _B_TRUE if b else _B_FALSE


def _enc_missing(_: MissingType) -> bytes:
    return _B_MISSING


def _enc_list(items: list[Any] | tuple[Any, ...]) -> bytes:
    encoders = _ENCODERS
    try:
        parts = [encoders[type(v)](v) for v in items]
    except KeyError:
        parts = [_enc_any(v) for v in items]
    parts.insert(0, _B_LIST)
    parts.append(_B_END)
    return b"".join(parts)


def _enc_dict(d: dict[Any, Any]) -> bytes:
    # Each item as encode(key) + encode(value). Encodings are prefix-free, so sorting these byte
    # strings sorts by key first (then by value, for flume-equal keys such as two NaNs).
    parts = sorted([_enc_any(k) + _enc_any(v) for k, v in d.items()])
    parts.insert(0, _B_DICT)
    parts.append(_B_END)
    return b"".join(parts)


_ENCODERS: Final[dict[type, Callable[[Any], bytes]]] = {
    str: _enc_str,
    int: _enc_int,
    float: _enc_float,
    type(None): _enc_none,
    bool: _enc_bool,
    bytes: _enc_bytes,
    list: _enc_list,
    tuple: _enc_list,
    dict: _enc_dict,
    MissingType: _enc_missing,
}


def _enc_container(value: Any) -> bytes:
    """A list, tuple or dict at the top of a key: checked against the depth limit as a whole
    (the recursive encoders below it are not), so that keys refuse exactly what the codec
    refuses."""
    if depth_exceeds(value):
        raise EncodeError("cannot encode a value as a key: " + too_deep_message("it"))
    return _ENCODERS[type(value)](value)


# What the public entry points dispatch on: the inner encoders, with containers checked.
_TOP_ENCODERS: Final[dict[type, Callable[[Any], bytes]]] = {
    **_ENCODERS, list: _enc_container, tuple: _enc_container, dict: _enc_container
}


def _enc_any(value: Any) -> bytes:
    """Encode any value recursively; only the public entry points catch RecursionError, so
    that the depth limit is checked on the whole value, never on a part of it."""
    try:
        return _ENCODERS[type(value)](value)
    except KeyError:
        return _encode_other(value)


def _encode_other(value: object) -> bytes:
    """Encode instances of subclasses of the storable types, or raise EncodeError."""
    if isinstance(value, int):  # bool has no subclasses and is in _ENCODERS
        return _enc_int(int(value))
    if isinstance(value, float):
        return _enc_float(float(value))
    if isinstance(value, str):
        return _enc_str(str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _enc_bytes(bytes(value))
    if isinstance(value, (list, tuple)):
        return _enc_list(value)
    if isinstance(value, dict):
        return _enc_dict(value)
    raise EncodeError(
        f"cannot encode {describe(value)} as a key: keys hold only None, bool, int (64-bit), "
        "float, str, bytes, list, tuple and dict values (convert other types first)"
    )


def encode(value: Any) -> bytes:
    """Encode one value (a scalar, list, tuple, dict, nested at will, or MISSING) to key bytes.

    The encoding is canonical (flume-equal values give identical bytes: ``1`` and ``1.0``,
    ``0.0`` and ``-0.0``, every NaN), self-delimiting, and sorts bytewise in flume order. A tuple
    is encoded like a list.

    Raises:
        EncodeError: the value, or something inside it, is not storable (a set, an arbitrary
            object, an int outside -2**63 .. 2**64-1, a cyclic structure, or one nested more
            than ``flume.codec.MAX_DEPTH`` deep).
    """
    try:
        return _TOP_ENCODERS[type(value)](value)
    except KeyError:
        if isinstance(value, (list, tuple, dict)) and depth_exceeds(value):
            raise EncodeError("cannot encode a value as a key: " + too_deep_message("it")) from None
        return _encode_other(value)
    except RecursionError:
        return _encode_deep(value)


_DONE: Final = object()


def _encode_deep(value: Any) -> bytes:
    """:func:`encode` as a loop, for values nested deeper than the call stack allows the
    recursive encoder: the same bytes, for every value up to ``MAX_DEPTH`` deep (as deep as
    the codec stores).

    Raises:
        EncodeError: deeper than ``MAX_DEPTH`` (or cyclic), or not storable.
    """
    # One frame per open container: its tag, an iterator over what is left of it (a dict's
    # keys and values alternate), and the encodings of its children so far.
    root: list[Any] = [None, iter((value,)), []]
    stack = [root]
    while True:
        frame = stack[-1]
        child = next(frame[1], _DONE)
        if child is _DONE:
            stack.pop()
            tag, _, parts = frame
            if tag is None:
                return bytes(parts[0])
            if tag == _B_DICT:
                parts = sorted([parts[i] + parts[i + 1] for i in range(0, len(parts), 2)])
            stack[-1][2].append(tag + b"".join(parts) + _B_END)
        elif isinstance(child, (list, tuple, dict)):
            if len(stack) > MAX_DEPTH:
                raise EncodeError("cannot encode a value as a key: " + too_deep_message("it"))
            if isinstance(child, dict):
                pairs = (x for item in child.items() for x in item)
                stack.append([_B_DICT, pairs, []])
            else:
                stack.append([_B_LIST, iter(child), []])
        else:
            try:
                encoded = _ENCODERS[type(child)](child)
            except KeyError:
                encoded = _encode_other(child)
            frame[2].append(encoded)


def encode_tuple(values: Any) -> bytes:
    """Encode a tuple (or any sequence) of values: the concatenation of :func:`encode` of each.

    ``encode_tuple(t[:k])`` is a byte prefix of ``encode_tuple(t)``, and encoded tuples compare
    lexicographically element by element (a shorter prefix first).

    Raises:
        EncodeError: ``values`` is not iterable, or an element is not storable (see encode).
    """
    t = type(values)
    if t is not tuple and t is not list:
        if isinstance(values, (str, bytes, bytearray, memoryview, dict)) or not hasattr(
            values, "__iter__"
        ):
            raise EncodeError(
                f"cannot encode {describe(values)} as a key tuple: expected a tuple or list "
                "of values"
            )
        values = tuple(values)  # an iterator: read it once
    encoders = _TOP_ENCODERS
    try:
        if len(values) == 2:  # the usual index key: (field, seq) or (field, field)
            a, b = values
            return encoders[type(a)](a) + encoders[type(b)](b)
        return b"".join([encoders[type(v)](v) for v in values])
    except KeyError:  # an element of a type outside the fast table: a subclass, or unstorable
        return b"".join([encode(v) for v in values])
    except RecursionError:
        return b"".join([_encode_deep(v) for v in values])


def compare(a: Any, b: Any) -> int:
    """Compare two values in flume order: -1 if ``a`` sorts first, 0 if equal, 1 if after.

    Raises:
        EncodeError: either value is not storable.
    """
    ea = encode(a)
    eb = encode(b)
    return (ea > eb) - (ea < eb)


# --- key ranges --------------------------------------------------------------------------------


def successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every byte string that starts with ``prefix``.

    That is ``prefix`` without its trailing 0xff bytes, with its last byte incremented; ``None``
    when there is no such string (``prefix`` is empty or all 0xff): the range is unbounded above.
    """
    stripped = bytes(prefix).rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


def prefix_key(p: str | bytes | list[Any] | tuple[Any, ...]) -> bytes:
    """The bytes that ``encode(v)`` starts with exactly when ``v`` has ``p``'s type and starts
    with p.

    For a str or bytes ``p``: ``v`` is a str (resp. bytes) and ``v.startswith(p)`` (``""``
    prefixes every string). For a list (or tuple) ``p``: ``v`` is a list whose first ``len(p)``
    items are flume-equal to ``p``'s. The matching keys are the range
    ``[prefix_key(p), successor(prefix_key(p)))``.

    Raises:
        InvalidTypeError: ``p`` is not a str, bytes or list.
        EncodeError: an item of a list ``p`` is not storable.
    """
    if isinstance(p, str):
        return _enc_str(p)[:-1]
    if isinstance(p, (bytes, bytearray, memoryview)):
        return _enc_bytes(bytes(p))[:-1]
    if isinstance(p, (list, tuple)):
        return _B_LIST + encode_tuple(p)
    raise InvalidTypeError(
        f"a prefix must be a str, bytes or list, not {type(p).__name__} ({p!r})"
    )


def type_range(kind: str) -> tuple[bytes, bytes]:
    """The key range ``(lower inclusive, upper exclusive)`` holding ``encode(v)`` of every v of
    a kind.

    ``kind`` is a ``$is`` name of QUERY.md: ``"null"``, ``"boolean"``, ``"number"``,
    ``"string"``, ``"bytes"``, ``"array"`` (list), ``"object"`` (dict) or ``"undefined"``
    (MISSING).

    Raises:
        InvalidArgumentError: ``kind`` is not one of those names.
    """
    try:
        return _TYPE_RANGES[kind]
    except (KeyError, TypeError):
        raise InvalidArgumentError(
            f"unknown type name {kind!r}: expected one of {', '.join(_TYPE_RANGES)}"
        ) from None


# --- type hints --------------------------------------------------------------------------------

# A hint has two parts. First the number codes, one byte per number in depth-first encoding
# order (dict items in encoded order), the trailing run of defaults left out: 0 = decode as
# without a hint, 1 = float, 2 = -0.0. Then, only when some dict's items are not in encoded
# order, the byte 0xff and, for each such dict, varints: its number (dicts counted depth first,
# in encoded order, from 0), its item count n, and n positions: where each item, in the order
# the dict had, stands in encoded order. Keys sort by their encoding, never by that order.
_H_DEFAULT: Final = 0
_H_FLOAT: Final = 1
_H_NEG_ZERO: Final = 2
_H_ORDER: Final = 0xFF


def _float_code(f: float) -> int:
    if f == 0.0:
        return _H_NEG_ZERO if math.copysign(1.0, f) < 0.0 else _H_FLOAT
    if f.is_integer() and _MIN_INT <= f <= _MAX_INT:
        return _H_FLOAT  # would come back as an int without a hint
    return _H_DEFAULT


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _hint_walk(value: Any, codes: list[int], orders: list[bytes]) -> None:
    """Append ``value``'s number codes and out-of-order dicts (a loop, not recursion: a value
    may nest as deep as the codec allows)."""
    stack = [value]
    pop, push, extend = stack.pop, stack.append, stack.extend
    dicts = 0
    while stack:
        v = pop()
        t = type(v)
        if t is float:
            codes.append(_float_code(v))
        elif t is int:
            codes.append(_H_DEFAULT)
        elif t is list or t is tuple:
            extend(reversed(v))
        elif t is dict:
            items = list(v.items())
            encoded = [encode(k) + encode(x) for k, x in items]
            order = sorted(range(len(items)), key=encoded.__getitem__)
            if any(i != j for i, j in enumerate(order)):
                position = [0] * len(order)
                for j, i in enumerate(order):
                    position[i] = j
                orders.append(
                    _varint(dicts) + _varint(len(order)) + b"".join(map(_varint, position))
                )
            dicts += 1
            for i in reversed(order):
                push(items[i][1])
                push(items[i][0])
        elif t is bool or t is str or t is bytes or v is None or v is MISSING:
            pass
        elif isinstance(v, int):
            codes.append(_H_DEFAULT)
        elif isinstance(v, float):
            codes.append(_float_code(float(v)))
        elif isinstance(v, (list, tuple)):
            extend(reversed(v))
        elif isinstance(v, dict):
            push(dict(v))


def type_hint(values: Any) -> bytes:
    """The type hint that makes decoding exact: ``b""`` unless some numbers or dicts need it.

    ``values`` is one value or a tuple of them. Integral floats (``2.0``, ``0.0``) decode as
    ints and ``-0.0`` as ``0`` from the canonical encoding, and dicts come back with their
    items in encoded order; the hint records the number types and the dicts' item order, so
    that ``decode_tuple(encode_tuple(t), type_hint(t)) == t`` with the exact types and key
    order (and likewise ``decode(encode(v), type_hint(v))``). The hint is opaque, short, and
    ``b""`` for values without such numbers or dicts (ints, non-integral floats, strings...).

    Raises:
        EncodeError: a value is not storable.
    """
    t = type(values)
    if t is tuple or t is list:
        for v in values:
            tv = type(v)
            if tv is float:
                if v.is_integer():  # 0.0, -0.0, 2.0 ... (not NaN nor infinities)
                    break
            elif tv is not str and tv is not int and tv is not bool and v is not None:
                break
        else:
            return b""  # the common index key: scalars, and no float an int could stand for
    codes: list[int] = []
    orders: list[bytes] = []
    _hint_walk(values, codes, orders)
    hint = bytes(codes).rstrip(b"\x00")
    if orders:
        hint += bytes((_H_ORDER,)) + b"".join(orders)
    return hint


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return n, pos
        shift += 7


def _restore_order(values: list[Any], section: bytes) -> None:
    """Put the items of the dicts in ``values`` that ``section`` (a hint's dict-order part)
    names back in their original order, in place.

    Raises:
        ValueError, IndexError: the section does not fit the values.
    """
    wanted: dict[int, list[int]] = {}
    pos = 0
    while pos < len(section):
        number, pos = _read_varint(section, pos)
        n, pos = _read_varint(section, pos)
        positions = []
        for _ in range(n):
            p, pos = _read_varint(section, pos)
            positions.append(p)
        if sorted(positions) != list(range(n)):
            raise ValueError("bad dict order in the type hint")
        wanted[number] = positions
    # Number the dicts as the hint did (depth first, items in encoded order) before moving any.
    found: list[dict[Any, Any]] = []
    stack: list[Any] = list(reversed(values))
    while stack and len(found) <= max(wanted):
        v = stack.pop()
        if type(v) is list:
            stack.extend(reversed(v))
        elif type(v) is dict:
            found.append(v)
            stack.extend(reversed(v.values()))  # keys hold no dicts
    for number, positions in wanted.items():
        d = found[number]
        items = list(d.items())
        if len(items) != len(positions):
            raise ValueError("dict order of the type hint does not fit the key")
        d.clear()
        d.update([items[p] for p in positions])


# --- decoding ----------------------------------------------------------------------------------


def _corrupt(data: bytes, why: str) -> NoReturn:
    shown = bytes(data[:40]).hex() + ("..." if len(data) > 40 else "")
    raise CorruptionError(f"malformed key bytes ({why}): {shown}")


def _unescape(b: bytes) -> bytes:
    if 1 not in b:
        return b
    out = bytearray()
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c == 1:
            if i + 1 >= n or b[i + 1] not in (1, 2):
                raise ValueError("bad escape")
            out.append(b[i + 1] - 1)
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


def _dec(data: bytes, pos: int, hint: bytes, k: int) -> tuple[Any, int, int]:
    """Decode the value at ``pos``; return it, the position after it, and the next hint index."""
    tag = data[pos]
    if tag == _T_STR:
        end = data.index(0, pos + 1)
        return _unescape(data[pos + 1 : end]).decode("utf-8", "surrogatepass"), end + 1, k
    if tag == _T_POS or tag == _T_NEG:
        if len(data) < pos + _NUMBER_LEN:
            raise ValueError("truncated number")
        if tag == _T_POS:
            f, r = _unpack_pos(data, pos + 1)
            if f < 0.0 or f != f:
                raise ValueError("bad number")
        else:
            bits, r = _unpack_number(data, pos + 1)
            if bits >= 2**63:
                raise ValueError("bad number")
            f = _unpack_d(_pack_q(~bits))[0] if bits else math.nan
            if bits and not f < 0.0:
                raise ValueError("bad number")
        r -= _R0
        code = hint[k] if k < len(hint) else _H_DEFAULT
        n: Any
        if r:
            if not f.is_integer() or abs(r) > 2**11:
                raise ValueError("bad number remainder")
            n = int(f) + r
            if code == _H_FLOAT:
                n = float(n)
        elif code == _H_DEFAULT:
            n = int(f) if f.is_integer() and _MIN_INT <= f <= _MAX_INT else f
        elif code == _H_FLOAT:
            n = f
        elif code == _H_NEG_ZERO:
            n = -0.0
        else:
            raise ValueError(f"bad type hint code {code}")
        return n, pos + _NUMBER_LEN, k + 1
    if tag == _T_LIST:
        items = []
        pos += 1
        while data[pos] != _END:
            v, pos, k = _dec(data, pos, hint, k)
            items.append(v)
        return items, pos + 1, k
    if tag == _T_NONE:
        return None, pos + 1, k
    if tag == _T_FALSE:
        return False, pos + 1, k
    if tag == _T_TRUE:
        return True, pos + 1, k
    if tag == _T_BYTES:
        end = data.index(0, pos + 1)
        return _unescape(data[pos + 1 : end]), end + 1, k
    if tag == _T_DICT:
        d = {}
        pos += 1
        while data[pos] != _END:
            key, pos, k = _dec(data, pos, hint, k)
            v, pos, k = _dec(data, pos, hint, k)
            d[hashable(key)] = v
        return d, pos + 1, k
    if tag == _T_MISSING:
        return MISSING, pos + 1, k
    raise ValueError(f"unknown tag 0x{tag:02x} at {pos}")


def _decode_all(data: bytes, hint: bytes, limit: int | None) -> list[Any]:
    data = bytes(data)
    hint = bytes(hint)
    order = b""
    if _H_ORDER in hint:
        cut = hint.index(_H_ORDER)
        hint, order = hint[:cut], hint[cut + 1 :]
    out: list[Any] = []
    pos = 0
    k = 0
    n = len(data)
    try:
        while pos < n and (limit is None or len(out) < limit):
            v, pos, k = _dec(data, pos, hint, k)
            out.append(v)
        if order:
            _restore_order(out, order)
    except (IndexError, ValueError, struct.error, RecursionError) as e:
        _corrupt(data, str(e) or type(e).__name__)
    if pos != n:
        _corrupt(data, f"{n - pos} bytes after the end")
    return out


def decode(data: bytes, hint: bytes = b"") -> Any:
    """Decode the bytes of exactly one value written by :func:`encode`.

    Without ``hint``, integral numbers (within the 64-bit int range) decode as ``int`` and the
    others as ``float``; with ``hint = type_hint(value)`` the value comes back with its exact
    types. Lists come back as lists; dict keys that were tuples come back as tuples.

    Raises:
        CorruptionError: ``data`` is not exactly one encoded value.
    """
    values = _decode_all(data, hint, 1)
    if not values:
        _corrupt(data, "empty")
    return values[0]


def decode_tuple(data: bytes, hint: bytes = b"") -> tuple[Any, ...]:
    """Decode the bytes written by :func:`encode_tuple` (all of them) back to a tuple.

    With ``hint = type_hint(t)``, ``decode_tuple(encode_tuple(t), hint) == t`` with the exact
    types (see :func:`type_hint`). To decode only the first elements of a longer key, cut it
    with :func:`split_tuple` first.

    Raises:
        CorruptionError: ``data`` is not a concatenation of encoded values.
    """
    return tuple(_decode_all(data, hint, None))
