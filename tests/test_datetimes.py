"""Which timestamps count as date-times: exactly Segment's runtime's answers."""

import itertools

import pytest

from service.routing.validation import _matches_ajv, is_date_time
from tests.conftest import golden, plain_id

CASES = golden("datetimes.json")["cases"]


@pytest.mark.parametrize("case", CASES, ids=[plain_id(repr(case["value"])) for case in CASES])
def test_date_time_like_runtime(case):
    assert is_date_time(case["value"]) is case["valid"]


def test_the_toisostring_shape_is_judged_as_the_general_check_judges_it():
    """The fast path (JavaScript's toISOString() shape) against the general check, over the boundaries of
    every field: years with and without Feb 29 and year 0, months and days out of range, hour 24,
    minute 60, a leap second, a letter where a digit goes."""
    years = ("0000", "1900", "2000", "2023", "2024")
    months = ("00", "01", "02", "04", "12", "13")
    days = ("00", "01", "28", "29", "30", "31", "32")
    times = ("00:00:00", "23:59:59", "23:59:60", "24:00:00", "12:60:00", "12:00:60", "1a:00:00", "99:99:99")
    fractions = (".000", ".999", ".9a9")
    checked = 0
    for year, month, day, time, fraction in itertools.product(years, months, days, times, fractions):
        text = f"{year}-{month}-{day}T{time}{fraction}Z"
        assert is_date_time(text) is _matches_ajv(text), text
        checked += 1
    assert checked == 5 * 6 * 7 * 8 * 3
    assert is_date_time("2024-02-29T23:59:60.000Z") and not is_date_time("2023-02-29T12:00:00.000Z")
