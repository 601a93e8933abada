"""Test tiers: every test carries exactly one of `TIERS` as a pytest marker.

`scripts/test.sh --fast` runs the unit tier only (`-m unit`), so a test without a tier would
silently never run there, and one with two would run in a tier it does not belong to. The
collection hook below (imported into tests/conftest.py) turns either into a usage error that
names the tests, before any test runs. The markers are registered in pyproject.toml, where
`--strict-markers` also refuses misspelt ones.
"""

from __future__ import annotations

import pytest

TIERS = ("unit", "integration", "training")
"""unit: pure and fast; integration: real Mosquitto, PortAudio or the virtual microphone, node
subprocesses, loop mounts, TTS engines; training: TensorFlow / Keras training."""


def tiers_of(item: pytest.Item) -> list[str]:
    """The tier markers on a test, from its function, class and module (`pytestmark`)."""
    return sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse the run when a collected test has no tier or several; first, so the check also
    covers tests that `-m` or `-k` would deselect."""
    wrong = [f"  {item.nodeid}: {', '.join(tiers) or 'no tier'}"
             for item in items if len(tiers := tiers_of(item)) != 1]
    if wrong:
        raise pytest.UsageError(
            f"{len(wrong)} test(s) need exactly one tier marker of {', '.join(TIERS)} "
            "(usually `pytestmark = pytest.mark.unit` at the top of the module):\n"
            + "\n".join(wrong))
