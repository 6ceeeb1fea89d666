"""Go's formatters, reimplemented byte for byte: `%q`, RFC 3339 times, encoding/json, yaml.v2.

Strings cross into "Go" through `go_bytes`: a lone surrogate (what Python's json keeps for an
unpaired `\\ud800` escape) becomes U+FFFD, as Go's JSON decoder makes it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import cmp_to_key, lru_cache

import yaml
from yaml import events as ye
from yaml.emitter import Emitter

from pipeline.report.yamlv2 import key_cmp, plain_is_str

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


def is_go_print(ch: str) -> bool:
    """Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and ASCII space."""
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


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
def _date_and_t(days: int) -> str:
    d = _EPOCH + timedelta(days=days)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T"


def rfc3339(ns: int) -> str:
    """Go `time.RFC3339` of a UTC instant given in ns since the epoch: seconds precision, `Z`."""
    # a report's times fall on a few days: their dates are cached, the clock is arithmetic
    days, secs = divmod(ns // 1_000_000_000, 86_400)
    hour, secs = divmod(secs, 3600)
    minute, sec = divmod(secs, 60)
    return f"{_date_and_t(days)}{_TWO_DIGITS[hour]}:{_TWO_DIGITS[minute]}:{_TWO_DIGITS[sec]}Z"


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


def _json_string(s: str) -> str:
    if not _JSON_UNSAFE.search(s):
        return f'"{s}"'
    return '"' + _JSON_ESCAPE.sub(
        lambda m: _JSON_SHORT.get(m[0]) or f"\\u{ord(m[0]):04x}", go_string(s)) + '"'


def _json_value(v: object, pad: str, indent: str) -> str:
    """`v` as JSON whose line starts with `pad` ("\\n" + its indentation)."""
    if isinstance(v, str):
        return _json_string(v)
    if isinstance(v, bool | int):
        return str(v).lower()
    if v is None:
        return "null"
    inner = pad + indent
    if isinstance(v, dict):
        if not v:
            return "{}"
        # the common values inline: a call per member costs more than the member's text
        members = [inner + _json_key(k) + (_json_string(x) if type(x) is str else
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
    return _json_string(key) + ": "


def go_json_dumps(obj: object, indent: str = "    ") -> str:
    """Go json.Encoder with SetIndent("", indent) and HTML escaping: dict order kept, ends in "\\n"."""
    return _json_value(obj, "\n", indent) + "\n"


# --- YAML: ghodss/yaml -> gopkg.in/yaml.v2 v2.4 (libyaml's emitter) --------------------------


def _libyaml_printable(o: int) -> bool:
    return o == 0x0A or 0x20 <= o <= 0x7E or 0xA0 <= o <= 0xD7FF or (0xE000 <= o <= 0xFFFD and o != 0xFEFF)


_YAML_ESCAPES = {0: "0", 7: "a", 8: "b", 9: "t", 0x0A: "n", 0x0B: "v", 0x0C: "f", 0x0D: "r", 0x1B: "e",
                 0x22: '"', 0x5C: "\\", 0x85: "N", 0xA0: "_", 0x2028: "L", 0x2029: "P"}


class _LibyamlEmitter(Emitter):
    """PyYAML's emitter (a port of libyaml) with yaml.v2's printable set and double-quote folding."""

    def analyze_scalar(self, scalar):
        analysis = super().analyze_scalar(scalar)
        if any(not _libyaml_printable(ord(ch)) for ch in scalar):
            # libyaml: U+0085 and non-BMP runes are not printable, so only "..." can hold them.
            analysis.allow_flow_plain = analysis.allow_block_plain = False
            analysis.allow_single_quoted = analysis.allow_block = False
        return analysis

    def _put(self, data: str) -> None:
        self.column += len(data)
        self.stream.write(data)

    def write_double_quoted(self, text, split=True):
        self.write_indicator('"', True)
        bom = text[:1] == "\ufeff"  # libyaml's is_bom looks at the first rune, for every rune
        spaces = False
        for i, ch in enumerate(text):
            o = ord(ch)
            if bom or not _libyaml_printable(o) or ch in '"\\\r\n\x85\u2028\u2029':
                if o in _YAML_ESCAPES:
                    self._put("\\" + _YAML_ESCAPES[o])
                elif o <= 0xFF:
                    self._put(f"\\x{o:02X}")
                elif o <= 0xFFFF:
                    self._put(f"\\u{o:04X}")
                else:
                    self._put(f"\\U{o:08X}")
                spaces = False
            elif ch == " ":
                if split and not spaces and self.column > self.best_width and 0 < i < len(text) - 1:
                    self.write_indent()
                    if text[i + 1] == " ":
                        self._put("\\")
                else:
                    self._put(" ")
                spaces = True
            else:
                self._put(ch)
                spaces = False
        self.write_indicator('"', False)


class GoYAMLError(ValueError):
    """tctl's YAML fails: ghodss/yaml re-reads its own JSON, whose raw DEL/C1/U+FFFE are refused."""


_V2_READER_REFUSES = re.compile("[\x7f-\x84\x86-\x9f\ufffe\uffff]")


def _yaml_events(v: object):
    if isinstance(v, dict):
        yield ye.MappingStartEvent(None, None, True, flow_style=False)
        for k in sorted(v, key=cmp_to_key(key_cmp)):
            yield from _yaml_events(k)
            yield from _yaml_events(v[k])
        yield ye.MappingEndEvent()
    elif isinstance(v, bool):
        yield ye.ScalarEvent(None, None, (True, True), "true" if v else "false")
    elif isinstance(v, int):
        yield ye.ScalarEvent(None, None, (True, True), str(v))
    elif v is None:
        yield ye.ScalarEvent(None, None, (True, True), "null")
    elif isinstance(v, str):
        s = go_string(v)
        if bad := _V2_READER_REFUSES.search(s):
            raise GoYAMLError(f"yaml: control characters are not allowed (U+{ord(bad[0]):04X} in "
                              f"{s[:40]!r}); tctl fails the same way: use --format json")
        style = "|" if "\n" in s else (None if plain_is_str(s) else '"')
        yield ye.ScalarEvent(None, None, (True, True), s, style=style)
    else:
        raise TypeError(f"go_yaml_dumps: unsupported type {type(v).__name__}; use dict/str/int/bool/None")


def _emit_yaml(obj: dict) -> str:
    """The document through PyYAML's emitter: exact for any value, but ~10 µs a scalar."""
    events = [ye.StreamStartEvent(), ye.DocumentStartEvent(explicit=False), *_yaml_events(obj),
              ye.DocumentEndEvent(explicit=False), ye.StreamEndEvent()]
    return yaml.emit(events, Dumper=_LibyamlEmitter, indent=2, width=80, allow_unicode=True)


@lru_cache(maxsize=256)
def _bare_keys_sorted(keys: tuple[str, ...]) -> list[str] | None:
    """A mapping's keys in yaml.v2 order when all are written bare (plain words), else None."""
    words = all(_PLAIN_WORD.fullmatch(k) and plain_is_str(k) for k in keys)
    return sorted(keys, key=cmp_to_key(key_cmp)) if keys and words else None


_PLAIN_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")  # no indicator PyYAML would quote for
_VERBATIM = re.compile(r'[!#-\[\]-~]*')  # printable ASCII but space, '"', '\\': nothing to escape or fold


def _emitted_pair(key: str, value: object, depth: int) -> tuple[str, bool]:
    """`key: value` as the emitter writes it `depth` mappings deep, and whether it leaves the
    stream open-ended (a `|+` literal, after which the emitter ends the stream with "...")."""
    doc: dict = {key: value}
    for _ in range(depth):
        doc = {"k": doc}
    text = _emit_yaml(doc).split("\n", depth)[-1]  # drop the enclosing keys' lines
    # the marker is the only line at column 0 that can end a value's text
    return (text[:-4], True) if text.endswith("\n...\n") else (text, False)


@lru_cache(maxsize=65536, typed=True)
def _yaml_pair(key: str, value: object, depth: int) -> tuple[str, bool]:
    """One `key: value` line (or block) `depth` mappings deep, and whether it is open-ended."""
    if isinstance(value, bool):
        scalar = "true" if value else "false"
    elif isinstance(value, int):
        scalar = str(value)
    elif not isinstance(value, str) or not _VERBATIM.fullmatch(value):
        return _emitted_pair(key, value, depth)
    elif not plain_is_str(value):
        scalar = f'"{value}"'
    elif _PLAIN_WORD.fullmatch(value):
        scalar = value
    else:  # bare but maybe an indicator (`a: b`, `#x`, `-`): PyYAML's analysis picks the style
        return _emitted_pair(key, value, depth)
    return f"{'  ' * depth}{key}: {scalar}\n", False


def _write_block(obj: dict, depth: int, out: list[str]) -> bool | None:
    """Append `obj`'s lines to `out`: True when its last scalar leaves the stream open-ended,
    None when a mapping is empty or has a key that needs quoting (left to the emitter)."""
    keys = _bare_keys_sorted(tuple(obj))
    if keys is None:
        return None
    open_ended: bool | None = False
    for key in keys:
        value = obj[key]
        if isinstance(value, dict):
            out.append(f"{'  ' * depth}{key}:\n")
            open_ended = _write_block(value, depth + 1, out)
            if open_ended is None:
                return None
        else:
            text, open_ended = _yaml_pair(key, value, depth)
            out.append(text)
    return open_ended


def go_yaml_dumps(obj: dict) -> str:
    """ghodss/yaml.Marshal of a JSON-shaped mapping as yaml.v2 v2.4 writes it (sorted keys, width 80)."""
    # Line by line: a `key: value` line depends only on its key, value and depth, so values with
    # nothing to quote or escape are written directly, the rest emitted once each (cached).
    out: list[str] = []
    open_ended = _write_block(obj, 0, out)
    if open_ended is None:
        return _emit_yaml(obj)
    return "".join(out) + ("...\n" if open_ended else "")
