"""tctl listings as people save them: what `tctl get nodes` / `tctl get user_tasks` print.

Accepted: JSON (`--format=json`: an array of resources, one resource, or JSON lines) and YAML
(tctl's default format: one document per resource, separated by `---`), UTF-8 with or without a
byte-order mark. Timestamps come in either of tctl's encodings: RFC 3339 strings (current tctl)
or, from older tctl that printed the protobuf message with plain Go JSON, `{"seconds": N,
"nanos": N}` objects (each member omitted when zero); every such object, wherever it sits in a
resource, is read as the RFC 3339 string current tctl prints.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.sources import SourceError

ACCEPTED = ("JSON from `tctl get {kind} --format=json` (an array, one object or JSON lines) or "
            "YAML documents from `tctl get {kind}`")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIMESTAMP_KEYS = frozenset({"seconds", "nanos"})


class ListingError(SourceError):
    """A file is not a tctl listing in any accepted format (the message says which are)."""


def load_listing(path: str, kind: str = "nodes") -> list[Any]:
    """The items of the tctl listing in the file `path` (`kind` names the resource in the error
    message), timestamps as RFC 3339 strings. Raises ListingError naming `path`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ListingError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ListingError(f"{path} is not UTF-8 text") from e
    items = parse_listing(text)
    if items is None:
        raise ListingError(f"{path} is not a tctl listing: expected {ACCEPTED.format(kind=kind)}")
    return items


def parse_listing(text: str) -> list[Any] | None:
    """The items of a listing's text (a leading byte-order mark ignored), timestamps normalized;
    [] when it is blank, None when it is not JSON, JSON lines nor YAML documents of objects."""
    text = text.removeprefix("\ufeff").strip()
    if not text:
        return []
    items = _json(text)
    if items is None:
        items = _yaml(text)
    return None if items is None else [normalize_timestamps(i) for i in items]


def _json(text: str) -> list[Any] | None:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        try:  # JSON lines
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            return None
    return doc if isinstance(doc, list) else [doc]


def _yaml(text: str) -> list[Any] | None:
    """YAML documents, each a resource (a mapping with a `kind`) or a list of them; None
    otherwise (`user tasks: none` is YAML, but no listing). Scalars keep their text where
    YAML 1.1 would make them timestamps (tctl's times stay RFC 3339)."""
    import yaml

    try:
        docs = [d for d in yaml.load_all(text, Loader=_loader()) if d is not None]
    except (yaml.YAMLError, ValueError):
        return None
    items: list[Any] = []
    for doc in docs:
        items.extend(doc if isinstance(doc, list) else [doc])
    if not items or not all(isinstance(i, dict) and "kind" in i for i in items):
        return None
    return items


def _loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader without the implicit timestamp type."""

    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return Loader


def normalize_timestamps(value: Any) -> Any:
    """`value` with every protobuf Timestamp in plain Go JSON (`{"seconds": N, "nanos": N}`, a
    non-empty object of only those integer members) replaced by its RFC 3339 string."""
    if isinstance(value, dict):
        if value and value.keys() <= _TIMESTAMP_KEYS and all(
                type(v) is int for v in value.values()):
            return rfc3339(value.get("seconds", 0), value.get("nanos", 0)) or value
        return {k: normalize_timestamps(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize_timestamps(v) for v in value]
    return value


def rfc3339(seconds: int, nanos: int) -> str | None:
    """A protobuf Timestamp as RFC 3339 in UTC (fraction digits as needed, up to 9), as current
    tctl prints it; None when it is not a valid Timestamp (years 1..9999, 0 <= nanos < 10^9)."""
    if not 0 <= nanos < 10**9:
        return None
    try:
        t = _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None
    frac = f".{nanos:09d}".rstrip("0") if nanos else ""
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
            f"{frac}Z")
