"""Which timestamps count as date-times: exactly Segment's runtime's answers."""

import pytest

from service.validation import is_date_time
from tests.conftest import golden, plain_id

CASES = golden("datetimes.json")["cases"]


@pytest.mark.parametrize("case", CASES, ids=[plain_id(repr(case["value"])) for case in CASES])
def test_date_time_like_runtime(case):
    assert is_date_time(case["value"]) is case["valid"]
