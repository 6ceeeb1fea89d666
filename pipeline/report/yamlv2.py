"""yaml.v2 v2.4's decisions that PyYAML's emitter does not make: map key order, implicit types, and
what its reader makes of the JSON ghodss/yaml hands it.

Go's yaml.v2 sorts map keys with its own `keyList.Less` and quotes a string whenever reading it back
plain would give another type (bool, number, timestamp, base-60 float): both reimplemented here.
ghodss/yaml.Marshal is json.Marshal, then yaml.v2 reads that JSON (`reread`), then writes YAML.
"""

from __future__ import annotations

import re


def _digit_run(s: str, i: int, n: int) -> tuple[int, int]:
    while i < len(s) and s[i].isdecimal():
        n, i = n * 10 + ord(s[i]) - 48, i + 1
    return n, i


def key_cmp(a: str, b: str) -> int:
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


def plain_is_str(s: str) -> bool:
    """yaml.v2 `resolve("", s) == !!str && !isBase60Float(s)`: may `s` be written unquoted?"""
    if s == "" or s in _V2_MAP:
        return False
    if s[0] == "." and _V2_DOT_FLOAT.fullmatch(s) and float(s) != float("inf"):
        return False
    if s[0] in "+-0123456789" and (_is_v2_timestamp(s) or _v2_is_number(s)):
        return False
    return not _V2_BASE60.fullmatch(s)


class GoYAMLError(ValueError):
    """tctl's YAML fails: ghodss/yaml re-reads its own JSON, whose raw DEL/C1/U+FFFE are refused.
    `partial` is what tctl has printed by then (the earlier documents); the CLI writes it first."""

    partial: bytes = b""


# raw in Go's JSON and refused by yaml.v2's reader (not printable there): DEL, C1 but NEL, U+FFFE/F
_V2_READER_REFUSES = re.compile("[\x7f-\x84\x86-\x9f\ufffe\uffff]")
# Go's JSON escapes every YAML break but NEL and every blank but space: those two stay raw
_BLANKS = re.compile("[ \x85]+")
_DOC_INDICATOR = re.compile("(?:---|\\.\\.\\.)[ \x85]")


def _fold(blanks: str) -> str:
    """libyaml's flow-scalar join of one run of spaces and NELs (a NEL reads as a line break):
    spaces alone stay; otherwise spaces around breaks go, a lone break becomes a space, and
    each break after the first stays a newline."""
    breaks = blanks.count("\x85")
    return blanks if not breaks else "\n" * (breaks - 1) or " "


def reread(s: str) -> str:
    """`s` after a JSON round trip through yaml.v2's reader, as ghodss/yaml.Marshal does it:
    a raw NEL is a line break inside the double-quoted scalar and folds. GoYAMLError where the
    reader refuses a character or meets `---`/`...` at the start of a line (after a NEL)."""
    if bad := _V2_READER_REFUSES.search(s):
        raise GoYAMLError(f"yaml: control characters are not allowed (U+{ord(bad[0]):04X} in "
                          f"{s[:40]!r}); tctl fails the same way: use --format json")
    if "\x85" not in s:
        return s
    for m in re.finditer("\x85", s):
        if _DOC_INDICATOR.match(s, m.end()):
            raise GoYAMLError(f"yaml: found unexpected document indicator after U+0085 in {s[:40]!r}; "
                              "tctl fails the same way: use --format json")
    return _BLANKS.sub(lambda m: _fold(m[0]), s)
