"""Go formatting reimplemented: %q, RFC 3339 times, encoding/json, yaml.v2 styles."""

from __future__ import annotations

import pytest

from pipeline.report.gofmt import go_bytes, go_json_dumps, go_quote, rfc3339, rfc3339nano
from pipeline.report.goyaml import GoYAMLError, go_yaml_dumps

from .conftest import SECOND, T0


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param("plain text", '"plain text"', id="plain"),
        pytest.param("a\nb\tc", '"a\\nb\\tc"', id="newline-tab"),
        pytest.param('say "hi" \\o/', '"say \\"hi\\" \\\\o/"', id="quote-backslash"),
        pytest.param("\a\b\f\r\v", '"\\a\\b\\f\\r\\v"', id="named-controls"),
        pytest.param("\x00\x01\x1b\x1c\x1f", '"\\x00\\x01\\x1b\\x1c\\x1f"', id="other-controls"),
        pytest.param("\x7f", '"\\x7f"', id="del"),
        pytest.param("\x85\xa0\xad", '"\\u0085\\u00a0\\u00ad"', id="latin1-nonprint"),
        pytest.param("zero\u200bwidth\ufeff", '"zero\\u200bwidth\\ufeff"', id="format-chars"),
        pytest.param("\u2028\u3000", '"\\u2028\\u3000"', id="unicode-spaces"),
        pytest.param("\U000e0001", '"\\U000e0001"', id="astral-nonprint"),
        pytest.param("déjà vu ✓ 日本 😀", '"déjà vu ✓ 日本 😀"', id="printable-unicode-kept"),
        pytest.param("\ufffd", '"\ufffd"', id="replacement-char-is-printable"),
        pytest.param("\U0001fae8 \U00031350", '"\U0001fae8 \U00031350"',
                     id="unicode-15-printable-as-go-1.25-has-it"),
        pytest.param("lone \ud800", '"lone \ufffd"', id="lone-surrogate-as-go-decodes-it"),
    ],
)
def test_go_quote_str(given, expected):
    assert go_quote(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(b"\xff\xfe", '"\\xff\\xfe"', id="invalid-bytes"),
        pytest.param(b"ok\xe2\x82", '"ok\\xe2\\x82"', id="truncated-rune-at-end"),
        pytest.param(b"\xe2\x82ok", '"\\xe2\\x82ok"', id="truncated-rune-then-ascii"),
        pytest.param(b"\xed\xa0\x80", '"\\xed\\xa0\\x80"', id="encoded-surrogate"),
        pytest.param(b"\xc0\x80", '"\\xc0\\x80"', id="overlong"),
    ],
)
def test_go_quote_bytes(given, expected):
    assert go_quote(given) == expected


def test_go_quote_of_a_100_byte_cut_inside_a_rune():
    text = "x" * 99 + "é and more"  # é is 2 bytes: byte 100 is its first half
    cut = go_bytes(text)[:100] + b"..."
    assert go_quote(cut) == '"' + "x" * 99 + '\\xc3..."'


@pytest.mark.parametrize(
    ("ns", "nano", "seconds"),
    [
        pytest.param(T0, "2026-05-04T10:00:00Z", "2026-05-04T10:00:00Z", id="whole-second"),
        pytest.param(T0 + SECOND // 10, "2026-05-04T10:00:00.1Z", "2026-05-04T10:00:00Z", id="tenth"),
        pytest.param(T0 + 123_456_789, "2026-05-04T10:00:00.123456789Z", "2026-05-04T10:00:00Z",
                     id="nanos"),
        pytest.param(T0 + 120_000_000, "2026-05-04T10:00:00.12Z", "2026-05-04T10:00:00Z",
                     id="trailing-zeros"),
        pytest.param(T0 + 999_999_999, "2026-05-04T10:00:00.999999999Z", "2026-05-04T10:00:00Z",
                     id="seconds-truncate-not-round"),
        pytest.param(1, "1970-01-01T00:00:00.000000001Z", "1970-01-01T00:00:00Z", id="one-ns"),
        pytest.param(-62_135_596_800 * SECOND, "0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z",
                     id="go-zero-time"),
    ],
)
def test_rfc3339(ns, nano, seconds):
    assert rfc3339nano(ns) == nano
    assert rfc3339(ns) == seconds


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param("<b>&", '"\\u003cb\\u003e\\u0026"', id="html-escaped"),
        pytest.param("\u2028\u2029", '"\\u2028\\u2029"', id="line-separators"),
        pytest.param("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"', id="short-escapes"),
        pytest.param("\x00\x1f\x0b", '"\\u0000\\u001f\\u000b"', id="controls-lower-hex"),
        pytest.param("\x7f é 😀 \u200b", '"\x7f é 😀 \u200b"', id="del-and-unicode-raw"),
        pytest.param('q"b\\', '"q\\"b\\\\"', id="quote-backslash"),
        pytest.param("\udc80", '"\ufffd"', id="lone-surrogate"),
    ],
)
def test_go_json_string_escaping(given, expected):
    assert go_json_dumps(given) == expected + "\n"


def test_go_json_layout():
    doc = [{"b": 1, "a": [True, None], "e": {}, "l": [], "n": -1}]
    assert go_json_dumps(doc) == (
        '[\n    {\n        "b": 1,\n        "a": [\n            true,\n            null\n'
        '        ],\n        "e": {},\n        "l": [],\n        "n": -1\n    }\n]\n'
    )
    assert go_json_dumps([]) == "[]\n"


def test_go_json_rejects_floats():
    with pytest.raises(TypeError, match="float"):
        go_json_dumps([1.5])


@pytest.mark.parametrize(
    ("value", "line"),
    [
        pytest.param("us-east-1", "k: us-east-1", id="plain"),
        pytest.param("", 'k: ""', id="empty"),
        pytest.param("123456789012", 'k: "123456789012"', id="int-like"),
        pytest.param("0755", 'k: "0755"', id="octal-like"),
        pytest.param("08", 'k: "08"', id="bad-octal-still-a-float"),
        pytest.param("0x1F", 'k: "0x1F"', id="hex"),
        pytest.param("1_000", 'k: "1_000"', id="underscores"),
        pytest.param("1e5", 'k: "1e5"', id="float"),
        pytest.param(".5", 'k: ".5"', id="dot-float"),
        pytest.param("1e999", "k: 1e999", id="float-overflow-is-str"),
        pytest.param("1:20", 'k: "1:20"', id="base60"),
        pytest.param("true", 'k: "true"', id="bool"),
        pytest.param("y", 'k: "y"', id="yaml11-y"),
        pytest.param("Off", 'k: "Off"', id="off"),
        pytest.param("~", 'k: "~"', id="null-tilde"),
        pytest.param("null", 'k: "null"', id="null"),
        pytest.param("2026-05-04T10:00:00.5Z", 'k: "2026-05-04T10:00:00.5Z"', id="timestamp"),
        pytest.param("2026-5-4", 'k: "2026-5-4"', id="short-date"),
        pytest.param("2026-02-30", "k: 2026-02-30", id="impossible-date-is-str"),
        pytest.param("2026-05-04T10:00:00", "k: 2026-05-04T10:00:00", id="T-without-zone-is-str"),
        pytest.param("6f1d2c3b-4a5e", "k: 6f1d2c3b-4a5e", id="guid-prefix"),
        pytest.param("a: b", "k: 'a: b'", id="colon-space-single-quoted"),
        pytest.param("- x", "k: '- x'", id="dash-space"),
        pytest.param("it's", "k: it's", id="apostrophe-plain"),
        pytest.param(" lead", "k: ' lead'", id="leading-space"),
        pytest.param("tab\there", 'k: "tab\\there"', id="tab-double-quoted"),
        pytest.param("é ✓ 日本", "k: é ✓ 日本", id="bmp-unicode-raw"),
        pytest.param("hi 😀", 'k: "hi \\U0001F600"', id="astral-escaped-like-yaml-v2"),
        pytest.param("\ufeffbom", 'k: "\\uFEFF\\x62\\x6F\\x6D"', id="leading-bom-escapes-all"),
    ],
)
def test_go_yaml_scalar_styles(value, line):
    assert go_yaml_dumps({"k": value}) == line + "\n"


def test_go_yaml_literal_and_its_fallback():
    assert go_yaml_dumps({"k": "one\ntwo"}) == "k: |-\n  one\n  two\n"
    assert go_yaml_dumps({"k": "trailing \nspace"}) == 'k: "trailing \\nspace"\n'
    assert go_yaml_dumps({"k": "ends\n"}) == "k: |\n  ends\n"


def test_go_yaml_folds_long_double_quoted_like_libyaml():
    # 'k: "\t' is 6 columns; word n ends at column 5n+5, so the fold comes after word 16 (85 > 80)
    value = "\t" + " ".join(["word"] * 20) + "  two-spaces " + "x" * 10
    assert go_yaml_dumps({"k": value}) == (
        'k: "\\tword word word word word word word word word word word word word word word word\n'
        '  word word word word  two-spaces xxxxxxxxxx"\n'
    )
    long_gap = "\t" + "w" * 76 + "  after"
    assert go_yaml_dumps({"k": long_gap}) == 'k: "\\t' + "w" * 76 + '\n  \\ after"\n'


def test_go_yaml_folds_long_plain():
    value = " ".join(["word"] * 20)  # word n ends at column 5n+4: fold after word 16 (84 > 80)
    assert go_yaml_dumps({"key": value}) == (
        "key: word word word word word word word word word word word word word word word word\n"
        "  word word word word\n"
    )


def test_go_yaml_sorts_keys_like_yaml_v2():
    # non-letters before letters; digit runs compare by value ("_" is a zero-length run < 9)
    doc = {"b": 1, "a_b": 2, "ab": 3, "a10": 4, "a9": 5, "nested": {"z": True, "y": False}}
    assert go_yaml_dumps(doc) == (
        "a_b: 2\na9: 5\na10: 4\nab: 3\nb: 1\nnested:\n  \"y\": false\n  z: true\n"
    )


@pytest.mark.parametrize("char", ["\x7f", "\x80", "\x84", "\x86", "\x9f", "\ufffe", "\uffff"])
def test_go_yaml_fails_where_yaml_v2_reader_refuses_raw_json(char):
    # json.Marshal leaves these raw; yaml.v2 then refuses to read ghodss's JSON back.
    with pytest.raises(GoYAMLError, match="control characters are not allowed"):
        go_yaml_dumps({"k": f"a{char}b"})


@pytest.mark.parametrize("char", ["\x00", "\x1f", "\ufeff", "\U0010ffff"])
def test_go_yaml_accepts_what_json_escapes_or_the_reader_allows(char):
    assert go_yaml_dumps({"k": f"a{char}b"}).startswith('k: "a\\')


@pytest.mark.parametrize(
    ("value", "text"),
    [
        # ghodss/yaml: json.Marshal leaves NEL raw; yaml.v2 reads it as a line break and folds it
        pytest.param("nel\x85", "k: 'nel '\n", id="nel-at-end-folds-to-a-space"),
        pytest.param("a\x85b", "k: a b\n", id="nel-inside-folds-to-a-space"),
        pytest.param("a \x85 \x85 b", "k: |-\n  a\n  b\n", id="second-nel-is-a-newline"),
        pytest.param("a\x85\n\n", 'k: "a \\n\\n"\n', id="nel-then-escaped-newlines"),
        # yaml.v2's single-quoted writer adds no indentation after trailing breaks
        pytest.param("x\u2028", "k: 'x\u2028'\n", id="ends-in-line-separator"),
        pytest.param("x\u2029", "k: 'x\u2029'\n", id="ends-in-paragraph-separator"),
        # yaml.v2's encoder never ends a stream with "..." (open_ended cleared before stream end)
        pytest.param("a\n\n", "k: |+\n  a\n\n", id="two-newlines-no-document-end"),
        pytest.param("\n\n\n", "k: |2+\n\n\n\n", id="only-newlines-no-document-end"),
    ],
)
def test_go_yaml_as_ghodss_reads_its_json_back(value, text):
    """Each expectation is what Go 1.25 + ghodss/yaml + yaml.v2 2.4 print (test_goracle.py)."""
    assert go_yaml_dumps({"k": value}) == text


def test_go_yaml_fails_on_a_document_indicator_after_nel():
    with pytest.raises(GoYAMLError, match="document indicator"):
        go_yaml_dumps({"k": "a\x85--- b"})
