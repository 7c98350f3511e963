import pytest

from tailor_operator.core.retry import backoff_seconds, retry_time
from tests.unit.operator.factories import at


@pytest.mark.parametrize(
    ("failures", "expected"), [(0, 0), (1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (500, 100)]
)
def test_backoff_doubles_up_to_the_cap(failures: int, expected: float) -> None:
    assert backoff_seconds(failures, base=10, cap=100) == expected


def test_retry_time_counts_from_the_last_finish() -> None:
    assert retry_time(at(50), 2, base=10, cap=100) == at(70)
