"""Shared fixtures of the reliability tests, and the counts they report at the end of a run.

Tests record what they tried in `TALLY` (`tally("crash trials", "killed while staging")`);
the terminal summary prints every count, so a run's closing note can quote them."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from tests.reliability import crash

TALLY: dict[str, Counter] = defaultdict(Counter)


def tally(group: str, outcome: str, n: int = 1) -> None:
    """Count one outcome of one kind of trial (printed in the terminal summary)."""
    TALLY[group][outcome] += n


def pytest_terminal_summary(terminalreporter) -> None:
    if not TALLY:
        return
    terminalreporter.section("reliability counts")
    for group, outcomes in sorted(TALLY.items()):
        total = sum(outcomes.values())
        terminalreporter.write_line(f"{group}: {total}")
        for outcome, n in sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0])):
            terminalreporter.write_line(f"    {n:5d}  {outcome}")


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> crash.Fleet:
    """A generated fleet (two auth servers, four days) big enough for a ~1 s ingest, its clean
    reference store (one CLI ingest) with the phase timings of that ingest, and a seed store
    holding only the first auth server's events."""
    return crash.build_fleet(tmp_path_factory.mktemp("fleet"))
