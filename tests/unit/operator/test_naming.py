import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailor_operator.core.naming import attempt_name, dns_label, label_value

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def test_short_names_read_as_job_trial_attempt() -> None:
    name = attempt_name("insects", "uid-1", "t0", 2)
    assert name.startswith("insects-t0-2-")
    assert len(name) == len("insects-t0-2-") + 5


def test_the_same_inputs_give_the_same_name_and_others_differ() -> None:
    assert attempt_name("a", "u", "t0", 1) == attempt_name("a", "u", "t0", 1)
    names = {
        attempt_name("a", "u", "t0", 1),
        attempt_name("a", "u", "t0", 2),
        attempt_name("a", "u", "t1", 1),
        attempt_name("a", "v", "t0", 1),
    }
    assert len(names) == 4


def test_long_names_are_hashed_within_63_characters_and_stay_distinct() -> None:
    job = "x" * 63
    first, second = attempt_name(job, "u", "t0", 1), attempt_name(job, "u", "t0", 2)
    assert len(first) == len(second) == 63
    assert first != second


@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=253),
    st.text(alphabet="abcdef0123456789-", min_size=1, max_size=36),
    st.sampled_from(["t0", "validate", "trial-with-long-name"]),
    st.integers(1, 10_000),
)
def test_attempt_names_are_always_dns_labels(job, uid, trial, attempt) -> None:
    if not job.strip("-."):
        return
    assert DNS_LABEL.match(attempt_name(job, uid, trial, attempt))


@pytest.mark.parametrize(("text", "length"), [("short", 5), ("y" * 63, 63), ("z" * 200, 63)])
def test_label_values(text: str, length: int) -> None:
    value = label_value(text)
    assert len(value) == length
    assert label_value(text) == value


def test_dns_label_lowercases_and_replaces_invalid_characters() -> None:
    assert dns_label("My.Job", "T0") == "my-job-t0"
