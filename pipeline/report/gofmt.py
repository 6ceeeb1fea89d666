"""Go's formatters, reimplemented byte for byte: `%q`, RFC 3339 times, encoding/json (YAML: goyaml.py).

Strings cross into "Go" through `go_bytes`: a lone surrogate (what Python's json keeps for an
unpaired `\\ud800` escape) becomes U+FFFD, as Go's JSON decoder makes it.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from pipeline.report.gounicode import PRINT_RANGES

_SURROGATES = re.compile("[\ud800-\udfff]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_QUOTE_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v",
                  0x22: '\\"', 0x5C: "\\\\"}


def go_string(s: str) -> str:
    """`s` as a Go string holds it: lone surrogates replaced by U+FFFD."""
    return _SURROGATES.sub("\ufffd", s)


def go_bytes(s: str | bytes) -> bytes:
    """The UTF-8 bytes of a Go string (bytes pass through untouched)."""
    return s if isinstance(s, bytes) else go_string(s).encode("utf-8")


def go_bytes_each(texts: Iterable[str]) -> list[bytes]:
    """`go_bytes` of each string; plain `encode` unless one holds a lone surrogate (rare)."""
    texts = list(texts)
    try:
        return [text.encode() for text in texts]
    except UnicodeEncodeError:
        return [go_bytes(text) for text in texts]


_PRINT_LO, _PRINT_HI = PRINT_RANGES[0::2], PRINT_RANGES[1::2]


def is_go_print(ch: str) -> bool:
    """Go's strconv.IsPrint by Go's own Unicode tables (gounicode.py, generated from Go 1.25:
    Unicode 15.0), not the host Python's: letters, marks, numbers, punctuation, symbols, ASCII space."""
    o = ord(ch)
    if 0x20 <= o < 0x7F:
        return True
    i = bisect_right(_PRINT_LO, o) - 1
    return i >= 0 and o <= _PRINT_HI[i]


def go_quote(s: str | bytes) -> str:
    """Go's strconv.Quote (`%q`): invalid UTF-8 bytes become `\\xNN`, non-printables `\\u`/`\\U`."""
    text = go_bytes(s).decode("utf-8", "surrogateescape")
    out = ['"']
    for ch in text:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # an invalid byte, escaped by the decoder
            out.append(f"\\x{o - 0xDC00:02x}")
        elif o in (0x22, 0x5C) or (o in _QUOTE_ESCAPES and not is_go_print(ch)):
            out.append(_QUOTE_ESCAPES[o])
        elif is_go_print(ch):
            out.append(ch)
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


_TWO_DIGITS = [f"{n:02d}" for n in range(60)]


@lru_cache(maxsize=1024)
def date_and_t(days: int) -> str:
    d = _EPOCH + timedelta(days=days)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T"


def rfc3339(ns: int) -> str:
    """Go `time.RFC3339` of a UTC instant given in ns since the epoch: seconds precision, `Z`."""
    # a report's times fall on a few days: their dates are cached, the clock is arithmetic
    days, secs = divmod(ns // 1_000_000_000, 86_400)
    hour, secs = divmod(secs, 3600)
    minute, sec = divmod(secs, 60)
    return f"{date_and_t(days)}{_TWO_DIGITS[hour]}:{_TWO_DIGITS[minute]}:{_TWO_DIGITS[sec]}Z"


def rfc3339nano(ns: int) -> str:
    """Go `time.RFC3339Nano` (and time.Time's JSON): trailing zeros of the fraction dropped."""
    digits = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return rfc3339(ns)[:-1] + (f".{digits}" if digits else "") + "Z"


# what Go's encoding/json escapes in a string (HTML-safe): short forms where it has them
_JSON_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029]')
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t"}
# ... and lone surrogates, which go_string replaces: a string with neither is written verbatim
_JSON_UNSAFE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')


def json_string(s: str) -> str:
    if not _JSON_UNSAFE.search(s):
        return f'"{s}"'
    return '"' + _JSON_ESCAPE.sub(
        lambda m: _JSON_SHORT.get(m[0]) or f"\\u{ord(m[0]):04x}", go_string(s)) + '"'


def _json_value(v: object, pad: str, indent: str) -> str:
    """`v` as JSON whose line starts with `pad` ("\\n" + its indentation)."""
    if isinstance(v, str):
        return json_string(v)
    if isinstance(v, bool | int):
        return str(v).lower()
    if v is None:
        return "null"
    inner = pad + indent
    if isinstance(v, dict):
        if not v:
            return "{}"
        # the common values inline: a call per member costs more than the member's text
        members = [inner + _json_key(k) + (json_string(x) if type(x) is str else
                                           "true" if x is True else "false" if x is False else
                                           _json_value(x, inner, indent)) for k, x in v.items()]
        return "{" + ",".join(members) + pad + "}"
    if isinstance(v, list | tuple):
        if not v:
            return "[]"
        return "[" + ",".join([inner + _json_value(x, inner, indent) for x in v]) + pad + "]"
    raise TypeError(f"go_json_dumps: unsupported type {type(v).__name__}; use dict/list/str/int/bool/None")


@lru_cache(maxsize=1024)
def _json_key(key: str) -> str:
    return json_string(key) + ": "


def go_json_dumps(obj: object, indent: str = "    ") -> str:
    """Go json.Encoder with SetIndent("", indent) and HTML escaping: dict order kept, ends in "\\n"."""
    return _json_value(obj, "\n", indent) + "\n"
