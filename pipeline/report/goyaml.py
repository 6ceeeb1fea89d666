"""ghodss/yaml.Marshal as tctl's YAML writer calls it: Go's JSON read back by gopkg.in/yaml.v2 v2.4
(`yamlv2.reread`), then written by yaml.v2's emitter (a port of libyaml: PyYAML's, adjusted).
"""

from __future__ import annotations

import re
from functools import cmp_to_key, lru_cache

import yaml
from yaml import events as ye
from yaml.emitter import Emitter

from pipeline.report.gofmt import go_string
from pipeline.report.yamlv2 import GoYAMLError, key_cmp, plain_is_str, reread

__all__ = ["GoYAMLError", "go_yaml_dumps"]


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

    def write_single_quoted(self, text, split=True):
        """yaml.v2's single-quoted writer: unlike libyaml (and PyYAML), no indentation is written
        after line breaks that end the value, so `'x\u2028'` closes right after the break."""
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
        s = reread(go_string(v))
        style = "|" if "\n" in s else (None if plain_is_str(s) else '"')
        yield ye.ScalarEvent(None, None, (True, True), s, style=style)
    else:
        raise TypeError(f"go_yaml_dumps: unsupported type {type(v).__name__}; use dict/str/int/bool/None")


# PyYAML's "..." after a `|+` literal: at column 0, right after the value's last line break
_OPEN_END = re.compile("[\\n\\x85\\u2028\\u2029]\\.\\.\\.\\n\\Z")


def _emit_yaml(obj: dict) -> str:
    """The document through PyYAML's emitter: exact for any value, but ~10 µs a scalar."""
    events = [ye.StreamStartEvent(), ye.DocumentStartEvent(explicit=False), *_yaml_events(obj),
              ye.DocumentEndEvent(explicit=False), ye.StreamEndEvent()]
    text = yaml.emit(events, Dumper=_LibyamlEmitter, indent=2, width=80, allow_unicode=True)
    # after a `|+` literal PyYAML (as libyaml) ends the stream with "..."; yaml.v2's encoder
    # clears open_ended before the stream end, so never. The marker is the only line at column 0
    # that can end a value's text.
    return text[:-4] if _OPEN_END.search(text) else text


@lru_cache(maxsize=256)
def _bare_keys_sorted(keys: tuple[str, ...]) -> list[str] | None:
    """A mapping's keys in yaml.v2 order when all are written bare (plain words), else None."""
    words = all(_PLAIN_WORD.fullmatch(k) and plain_is_str(k) for k in keys)
    return sorted(keys, key=cmp_to_key(key_cmp)) if keys and words else None


_PLAIN_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")  # no indicator PyYAML would quote for
_VERBATIM = re.compile(r'[!#-\[\]-~]*')  # printable ASCII but space, '"', '\\': nothing to escape or fold


def _emitted_pair(key: str, value: object, depth: int) -> str:
    """`key: value` as the emitter writes it `depth` mappings deep."""
    doc: dict = {key: value}
    for _ in range(depth):
        doc = {"k": doc}
    return _emit_yaml(doc).split("\n", depth)[-1]  # drop the enclosing keys' lines


@lru_cache(maxsize=65536, typed=True)
def _yaml_pair(key: str, value: object, depth: int) -> str:
    """One `key: value` line (or block) `depth` mappings deep."""
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
    return f"{'  ' * depth}{key}: {scalar}\n"


def _write_block(obj: dict, depth: int, out: list[str]) -> bool:
    """Append `obj`'s lines to `out`; False when a mapping is empty or has a key that needs
    quoting (left to the emitter)."""
    keys = _bare_keys_sorted(tuple(obj))
    if keys is None:
        return False
    for key in keys:
        value = obj[key]
        if isinstance(value, dict):
            out.append(f"{'  ' * depth}{key}:\n")
            if not _write_block(value, depth + 1, out):
                return False
        else:
            out.append(_yaml_pair(key, value, depth))
    return True


def go_yaml_dumps(obj: dict) -> str:
    """ghodss/yaml.Marshal of a JSON-shaped mapping as yaml.v2 v2.4 writes it (sorted keys, width 80)."""
    # Line by line: a `key: value` line depends only on its key, value and depth, so values with
    # nothing to quote or escape are written directly, the rest emitted once each (cached).
    out: list[str] = []
    return "".join(out) if _write_block(obj, 0, out) else _emit_yaml(obj)
