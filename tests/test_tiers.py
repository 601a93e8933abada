"""The tier check (tests/support/tiers.py): `scripts/test.sh --fast` runs `-m unit`, so a test
with no tier, or with two, must stop the run before any test runs rather than slip past it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit

MARKERS = "[pytest]\nmarkers =\n    unit: u\n    integration: i\n    training: t\n"


def run_unit_tier(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    """`pytest -m unit` over one test module, with the tier check as its only plugin."""
    pytester.makeini(MARKERS)
    pytester.makepyfile(test_sample=source)
    return pytester.runpytest("-p", "tests.support.tiers", "-m", "unit")


def test_a_test_without_a_tier_stops_the_run_even_when_deselected(pytester):
    result = run_unit_tier(pytester, """
import pytest

@pytest.mark.unit
def test_tiered():
    pass

def test_untiered():
    pass
""")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*1 test(s) need exactly one tier marker*",
                                 "*test_sample.py::test_untiered: no tier"])
    result.assert_outcomes()


def test_a_function_tier_does_not_override_its_modules(pytester):
    result = run_unit_tier(pytester, """
import pytest

pytestmark = pytest.mark.unit

@pytest.mark.integration
def test_both():
    pass
""")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_sample.py::test_both: integration, unit"])


def test_the_unit_tier_runs_only_unit_tests(pytester):
    result = run_unit_tier(pytester, """
import pytest

@pytest.mark.unit
def test_fast():
    pass

@pytest.mark.integration
def test_slow():
    raise AssertionError("the integration tier ran under -m unit")
""")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, deselected=1)
