"""Timestamps as Kubernetes writes them: RFC 3339, UTC, whole seconds."""

from datetime import UTC, datetime


def parse_time(text: str | None) -> datetime | None:
    """A Kubernetes timestamp ("2024-05-01T10:00:00Z") as an aware datetime; None stays None."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}") from error
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return parsed.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """Whole seconds in UTC with a Z, the form metav1.Time uses."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware (UTC) datetime")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_between(start: datetime | None, end: datetime | None) -> float:
    """Elapsed seconds, never negative (clocks of different machines may disagree)."""
    if start is None or end is None:
        return 0.0
    return max(0.0, (end - start).total_seconds())
