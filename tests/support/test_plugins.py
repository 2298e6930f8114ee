"""The support plugins keep their promises: a test that needs the broker is marked ``kafka`` by
its fixtures alone, ``-m "not kafka"`` starts no broker, and a wait says what it waited for."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.waiting import WaitTimeout, wait_for_position, wait_until

REPO = Path(__file__).resolve().parents[2]

INNER_TESTS = """
import pytest

def test_by_name(kafka):
    pass

def test_through_another_fixture(serve):
    pass

def test_without_the_broker():
    pass

def test_asks_for_it_at_run_time(request):
    request.getfixturevalue("kafka")

@pytest.mark.kafka
def test_marked_by_hand_and_asks_at_run_time(request):
    request.getfixturevalue("kafka")
"""

#: The inner run's own conftest: the plugins under test, and a Tansu that leaves a trace instead of starting.
INNER_CONFTEST = """
from pathlib import Path

from tests.support import tansu

pytest_plugins = ["tests.support.broker", "tests.support.serve"]
STARTED = Path(__file__).parent / "tansu-started"

def _refuse(self):
    STARTED.write_text("a broker was started")
    raise RuntimeError("this run must not start a broker")

tansu.Tansu.__enter__ = _refuse
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    pytester.makeini('[pytest]\naddopts = -p no:cacheprovider --strict-markers\nmarkers =\n    kafka: needs the broker\n')
    return pytester


def test_a_test_whose_fixtures_start_the_broker_is_a_kafka_test(inner: pytest.Pytester) -> None:
    collected = inner.runpytest_subprocess("-m", "kafka", "--collect-only", "-q")
    collected.stdout.fnmatch_lines([
        "test_inner.py::test_by_name", "test_inner.py::test_through_another_fixture",
        "test_inner.py::test_marked_by_hand_and_asks_at_run_time", "3/5 tests collected (2 deselected)*",
    ])
    # The trap this file sets for the broker works: a run of the kafka tests springs it.
    inner.runpytest_subprocess("-m", "kafka").assert_outcomes(errors=2, failed=1, deselected=2)
    assert (inner.path / "tansu-started").exists()


def test_not_kafka_starts_no_broker_and_an_unmarked_test_that_asks_for_one_fails(inner: pytest.Pytester) -> None:
    result = inner.runpytest_subprocess("-m", "not kafka")
    result.assert_outcomes(passed=1, failed=1, deselected=3)
    result.stdout.fnmatch_lines(["*test_asks_for_it_at_run_time uses the Kafka broker but is not marked `kafka`*"])
    assert not (inner.path / "tansu-started").exists(), "a broker was started by a run without kafka tests"


def test_wait_until_returns_the_value_and_names_what_it_waited_for() -> None:
    values = iter([0, [], "ready"])
    assert wait_until(lambda: next(values), 1, "a value", interval=0) == "ready"
    with pytest.raises(WaitTimeout, match=r"gave up after 0.1 s waiting for the answer; the last value was \[\]"):
        wait_until(lambda: [], 0.1, lambda: "the answer")


def test_a_position_is_reached_source_by_source_never_summed() -> None:
    assert wait_for_position(lambda: {"t/0": 3, "t/1": 1}, {"t/0": 2, "t/1": 1}, 1, "t") == {"t/0": 3, "t/1": 1}
    with pytest.raises(WaitTimeout, match="the model: behind at t/1 0 of 1"):
        wait_for_position(lambda: {"t/0": 9}, {"t/0": 2, "t/1": 1}, 0.1, "the model")
