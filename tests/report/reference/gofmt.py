# FROZEN ORACLE: pipeline/report/gofmt.py as of commit 570e1d2, before the renderers were optimised.
# Kept verbatim (imports redirected here) so tests/report/test_render_differential.py can check
# the fast renderers stay byte-identical to it. Do not edit or "improve" it.
# ISSUE 16 (Go parity) changed these rules on purpose; the reference takes them from the pipeline,
# whose definitions tests/report/test_goracle.py checks against real Go (now the authority):
# is_go_print (Go's Unicode 15.0 table), yamlv2.reread (NEL folding, refusals), yaml.v2's
# single-quoted writer (no indentation after trailing breaks), no "..." at the stream end.
"""Go's formatters, reimplemented byte for byte: `%q`, RFC 3339 times, encoding/json, yaml.v2.

Strings cross into "Go" through `go_bytes`: a lone surrogate (what Python's json keeps for an
unpaired `\\ud800` escape) becomes U+FFFD, as Go's JSON decoder makes it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cmp_to_key

import yaml
from yaml import events as ye
from yaml.emitter import Emitter

from pipeline.report.gofmt import is_go_print  # issue 16
from pipeline.report.yamlv2 import reread  # issue 16

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


def rfc3339(ns: int) -> str:
    """Go `time.RFC3339` of a UTC instant given in ns since the epoch: seconds precision, `Z`."""
    t = _EPOCH + timedelta(seconds=ns // 1_000_000_000)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z"


def rfc3339nano(ns: int) -> str:
    """Go `time.RFC3339Nano` (and time.Time's JSON): trailing zeros of the fraction dropped."""
    digits = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return rfc3339(ns)[:-1] + (f".{digits}" if digits else "") + "Z"


# what Go's encoding/json escapes in a string (HTML-safe): short forms where it has them
_JSON_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029]')
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t"}


def _json_string(s: str) -> str:
    return '"' + _JSON_ESCAPE.sub(
        lambda m: _JSON_SHORT.get(m[0]) or f"\\u{ord(m[0]):04x}", go_string(s)) + '"'


def _json_value(v: object, depth: int, indent: str) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool | int):
        return str(v).lower()
    if isinstance(v, str):
        return _json_string(v)
    pad, inner = "\n" + indent * depth, "\n" + indent * (depth + 1)
    if isinstance(v, dict):
        if not v:
            return "{}"
        items = (f"{inner}{_json_string(k)}: {_json_value(x, depth + 1, indent)}" for k, x in v.items())
        return "{" + ",".join(items) + pad + "}"
    if isinstance(v, list | tuple):
        if not v:
            return "[]"
        return "[" + ",".join(inner + _json_value(x, depth + 1, indent) for x in v) + pad + "]"
    raise TypeError(f"go_json_dumps: unsupported type {type(v).__name__}; use dict/list/str/int/bool/None")


def go_json_dumps(obj: object, indent: str = "    ") -> str:
    """Go json.Encoder with SetIndent("", indent) and HTML escaping: dict order kept, ends in "\\n"."""
    return _json_value(obj, 0, indent) + "\n"


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

    def write_single_quoted(self, text, split=True):  # issue 16: yaml.v2's writer
        self.write_indicator("'", True)
        spaces = breaks = False
        for i, ch in enumerate(text):
            if ch == " ":
                if (split and not spaces and self.column > self.best_width and 0 < i < len(text) - 1
                        and text[i + 1] != " "):
                    self.write_indent()
                else:
                    self._put(" ")
                spaces = True
            elif ch in "\n\x85\u2028\u2029":
                if not breaks and ch == "\n":
                    self.write_line_break()
                self.write_line_break(None if ch == "\n" else ch)
                breaks = True
            else:
                if breaks:
                    self.write_indent()
                self._put("''" if ch == "'" else ch)
                self.indention = spaces = breaks = False
        self.write_indicator("'", False)

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


def _digit_run(s: str, i: int, n: int) -> tuple[int, int]:
    while i < len(s) and s[i].isdecimal():
        n, i = n * 10 + ord(s[i]) - 48, i + 1
    return n, i


def _yaml_v2_key_cmp(a: str, b: str) -> int:
    """yaml.v2's keyList.Less on string keys: letters sort after others, digit runs by value."""
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        al, bl = a[i].isalpha(), b[i].isalpha()
        if al != bl:
            return 1 if al else -1
        if not al:
            j = i
            while j > 0 and a[j - 1].isdecimal():
                j -= 1
            seed = int("0" in (a[i], b[i]) and a[j:i].strip("0") != "")
            (an, ae), (bn, be) = _digit_run(a, i, seed), _digit_run(b, i, seed)
            if (an, ae) != (bn, be):
                return -1 if (an, ae) < (bn, be) else 1
        return -1 if a[i] < b[i] else 1
    return (len(a) > len(b)) - (len(a) < len(b))


_V2_MAP = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "n", "N", "no",
           "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "~", "null", "Null", "NULL",
           ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
           "-.Inf", "-.INF"}
_V2_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_V2_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
_V2_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_V2_TIME = re.compile(  # yaml.v2's time.Parse layouts: 2006-1-2[(T|t| )15:4:5[.9*][Z07:00]]
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9][0-9]?)-(?P<d>[0-9][0-9]?)(?:(?P<sep>[Tt ])(?P<h>[0-9][0-9]?)"
    r":(?P<mi>[0-9][0-9]?):(?P<s>[0-9][0-9]?)(?:[.,][0-9]+)?(?P<z>Z|[-+](?P<zh>[0-9]{2}):(?P<zm>[0-9]{2}))?)?")
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_v2_timestamp(s: str) -> bool:
    m = _V2_TIME.fullmatch(s)
    if not m or (m["sep"] is not None and (m["sep"] == " ") == bool(m["z"])):
        return False  # "T"/"t" needs a zone, " " allows none
    year, month, day = int(m["y"]), int(m["mo"]), int(m["d"])
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= month <= 12 or not 1 <= day <= _DAYS[month - 1] - (month == 2 and not leap):
        return False
    if m["h"] and (int(m["h"]) > 23 or int(m["mi"]) > 59 or int(m["s"]) > 59):
        return False
    return not m["zh"] or (int(m["zh"]) <= 24 and int(m["zm"]) <= 60)


def _go_parse_uint(s: str, base: int = 0) -> int | None:
    """strconv.ParseUint(s, base, 64) (underscores already removed), None on error."""
    if not s:
        return None
    if base == 0:
        base = 10
        if s[0] == "0":
            prefix = s[1:2].lower()
            base, s = ({"b": 2, "o": 8, "x": 16}[prefix], s[2:]) if len(s) >= 3 and prefix in "box" else (8, s[1:])
    digits = "0123456789abcdef"[:base]
    if any(c.lower() not in digits for c in s):
        return None
    value = int(s, base) if s else 0
    return value if value < 1 << 64 else None


def _go_parse_int(s: str, base: int = 0) -> int | None:
    """strconv.ParseInt(s, base, 64), None on error."""
    neg = s[:1] == "-"
    value = _go_parse_uint(s[1:] if s[:1] in "+-" else s, base)
    if value is None or value > (1 << 63) - (not neg):
        return None
    return -value if neg else value


def _v2_is_number(s: str) -> bool:
    plain = s.replace("_", "")
    if _go_parse_int(plain) is not None or _go_parse_uint(plain) is not None:
        return True
    if _V2_FLOAT.fullmatch(plain) and float(plain) not in (float("inf"), float("-inf")):
        return True
    if plain.startswith("0b"):
        return _go_parse_int(plain[2:], 2) is not None or _go_parse_uint(plain[2:], 2) is not None
    return plain.startswith("-0b") and _go_parse_int("-" + plain[3:], 2) is not None


def _yaml_v2_plain_is_str(s: str) -> bool:
    """yaml.v2 `resolve("", s) == !!str && !isBase60Float(s)`: may `s` be written unquoted?"""
    if s == "" or s in _V2_MAP:
        return False
    if s[0] == "." and _V2_DOT_FLOAT.fullmatch(s) and float(s) != float("inf"):
        return False
    if s[0] in "+-0123456789" and (_is_v2_timestamp(s) or _v2_is_number(s)):
        return False
    return not _V2_BASE60.fullmatch(s)


class GoYAMLError(ValueError):
    """tctl's YAML fails: ghodss/yaml re-reads its own JSON, whose raw DEL/C1/U+FFFE are refused."""


_V2_READER_REFUSES = re.compile("[\x7f-\x84\x86-\x9f\ufffe\uffff]")


def _yaml_events(v: object):
    if isinstance(v, dict):
        yield ye.MappingStartEvent(None, None, True, flow_style=False)
        for k in sorted(v, key=cmp_to_key(_yaml_v2_key_cmp)):
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
        s = reread(go_string(v))  # issue 16
        style = "|" if "\n" in s else (None if _yaml_v2_plain_is_str(s) else '"')
        yield ye.ScalarEvent(None, None, (True, True), s, style=style)
    else:
        raise TypeError(f"go_yaml_dumps: unsupported type {type(v).__name__}; use dict/str/int/bool/None")


# PyYAML's "..." after a `|+` literal: at column 0, right after the value's last line break
_OPEN_END = re.compile("[\\n\\x85\\u2028\\u2029]\\.\\.\\.\\n\\Z")


def go_yaml_dumps(obj: dict) -> str:
    """ghodss/yaml.Marshal of a JSON-shaped mapping as yaml.v2 v2.4 writes it (sorted keys, width 80)."""
    events = [ye.StreamStartEvent(), ye.DocumentStartEvent(explicit=False), *_yaml_events(obj),
              ye.DocumentEndEvent(explicit=False), ye.StreamEndEvent()]
    text = yaml.emit(events, Dumper=_LibyamlEmitter, indent=2, width=80, allow_unicode=True)
    return text[:-4] if _OPEN_END.search(text) else text  # issue 16: yaml.v2 never writes "..."
