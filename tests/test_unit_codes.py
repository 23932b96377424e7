"""Unit codes as the settings check reads them, and the once-a-day warning about a unit that stays quiet."""

from __future__ import annotations

import pytest

from services.onestop_sim.seed import unit_codes
from shared.quiet_units import DAY, QuietUnits
from shared.unit_codes import unit_code_problem, unit_list_problems


def test_every_documented_and_simulated_code_is_a_unit_code():
    for code in ["000.00.17.H55", "000.00.12.H55", "000.00.21.H55", "000.00.00.G12", *unit_codes(200)]:
        assert unit_code_problem(code) is None, code


@pytest.mark.parametrize(("value", "hint"), [
    ("000.00.17.H55;000.00.12.H55", "separate units with commas"),
    ("000.00.17.h55", "the letter is a capital"),
    ("000.00.17", ""),
    ("00.00.17.H55", ""),
    ("000.00.17.H55-200917-0013", ""),  # a dossier code, not a unit code
    ("000.00.17.H55 ", "separate units with commas"),
])
def test_what_is_not_a_unit_code_is_named_with_a_hint(value, hint):
    problem = unit_code_problem(value)
    assert problem is not None and repr(value) in problem and "000.00.17.H55" in problem
    assert hint in problem


def test_a_unit_list_must_name_units_once():
    assert unit_list_problems([]) == ["no units: name at least one unit code, comma-separated (like 000.00.17.H55)"]
    assert unit_list_problems(["000.00.17.H55", "000.00.12.H55"]) == []
    assert unit_list_problems(["000.00.17.H55", "000.00.17.H55"]) == ["listed more than once: 000.00.17.H55"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_unit_that_keeps_returning_nothing_is_warned_about_once_a_day():
    clock = Clock()
    quiet = QuietUnits(clock=clock)
    assert quiet.record("000.00.99.H55", 0) is None  # one empty poll says nothing
    clock.now += DAY - 1
    assert quiet.record("000.00.99.H55", 0) is None
    clock.now += 1
    warning = quiet.record("000.00.99.H55", 0)
    assert warning is not None and "000.00.99.H55" in warning and "24 hours" in warning
    for _ in range(10):  # polls every few minutes: no repeat within the day
        clock.now += 300
        assert quiet.record("000.00.99.H55", 0) is None
    clock.now += DAY
    assert "000.00.99.H55" in (quiet.record("000.00.99.H55", 0) or "")


def test_a_unit_that_returns_dossiers_is_never_warned_about_and_starts_over():
    clock = Clock()
    quiet = QuietUnits(clock=clock)
    for _ in range(30):
        clock.now += DAY / 10
        assert quiet.record("000.00.17.H55", 3) is None
    clock.now += DAY / 2
    assert quiet.record("000.00.17.H55", 0) is None  # half a day after its last dossier
    clock.now += DAY / 2
    assert quiet.record("000.00.17.H55", 0) is not None
    assert quiet.record("000.00.17.H55", 1) is None
    clock.now += DAY / 2
    assert quiet.record("000.00.17.H55", 0) is None  # the day is counted from its last dossier again
