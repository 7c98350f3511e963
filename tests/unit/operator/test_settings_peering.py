"""Peering settings: the Helm chart runs replicas that share a kopf peering object."""

import pytest

from tailor_operator.settings import SettingsError, load_settings, start_priority


def test_standalone_unless_a_peering_is_named() -> None:
    settings = load_settings({})
    assert (settings.peering_name, settings.peering_priority) == (None, None)


def test_peering_name_and_priority_are_read() -> None:
    settings = load_settings(
        {"TAILOR_PEERING_NAME": "tailor.team-a", "TAILOR_PEERING_PRIORITY": "-7"}
    )
    assert (settings.peering_name, settings.peering_priority) == ("tailor.team-a", -7)


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("TAILOR_PEERING_NAME", "Tailor", "lowercase DNS name"),
        ("TAILOR_PEERING_NAME", "tailor-", "lowercase DNS name"),
        ("TAILOR_PEERING_NAME", "a" * 254, "lowercase DNS name"),
        ("TAILOR_PEERING_PRIORITY", "high", "invalid literal"),
    ],
)
def test_a_bad_peering_setting_is_named(name: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError, match=name) as error:
        load_settings({name: value})
    assert words in str(error.value)


def test_the_older_replica_has_the_higher_priority() -> None:
    started = 1_780_000_000_123_456_789
    assert start_priority(started) > start_priority(started + 1_000)
    # Replicas a microsecond apart never tie (kopf would pause both).
    assert start_priority(started) != start_priority(started + 1_000)
    # Fits the int64 a Kubernetes object stores for years to come.
    assert -(2**63) < start_priority(4_102_444_800 * 10**9) < 0
