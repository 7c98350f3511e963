"""Exponential backoff between attempts of the same trial."""

from datetime import datetime, timedelta


def backoff_seconds(failures: int, base: float, cap: float) -> float:
    """Delay after the n-th failure in a row: base, 2*base, 4*base, ... at most cap."""
    if failures < 1:
        return 0.0
    # Bounded exponent: 2**1000 would overflow a float long before the cap applies.
    return float(min(cap, base * 2 ** min(failures - 1, 60)))


def retry_time(last_finish: datetime, failures: int, base: float, cap: float) -> datetime:
    return last_finish + timedelta(seconds=backoff_seconds(failures, base, cap))
