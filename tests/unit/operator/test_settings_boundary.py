"""The tenant boundary's allow-lists, read from the environment the chart sets."""

import pytest

from tailor_operator.settings import SettingsError, load_settings

LISTS = (
    "TAILOR_ALLOWED_ENDPOINTS",
    "TAILOR_ALLOWED_PRIORITY_CLASSES",
    "TAILOR_ALLOWED_TOLERATION_KEYS",
)


def allow_lists(env: dict[str, str]) -> tuple[tuple[str, ...] | None, ...]:
    policy = load_settings(env).policy
    return (
        policy.allowed_endpoints,
        policy.allowed_priority_classes,
        policy.allowed_toleration_keys,
    )


def test_unset_allows_anything() -> None:
    assert allow_lists({}) == (None, None, None)


def test_the_lists_are_read() -> None:
    env = {
        "TAILOR_ALLOWED_ENDPOINTS": "http://minio.storage:9000, https://s3.example.com",
        "TAILOR_ALLOWED_PRIORITY_CLASSES": "batch-low,batch-high",
        "TAILOR_ALLOWED_TOLERATION_KEYS": "nvidia.com/gpu,dedicated",
    }
    assert allow_lists(env) == (
        ("http://minio.storage:9000", "https://s3.example.com"),
        ("batch-low", "batch-high"),
        ("nvidia.com/gpu", "dedicated"),
    )


def test_set_but_empty_allows_nothing() -> None:
    # A list emptied on purpose must not fall back to "anything".
    assert allow_lists(dict.fromkeys(LISTS, "")) == ((), (), ())


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("TAILOR_ALLOWED_ENDPOINTS", "minio.storage:9000", "http(s)://host[:port]"),
        ("TAILOR_ALLOWED_ENDPOINTS", "http://minio:9000@evil.example", "without a path or user"),
        ("TAILOR_ALLOWED_ENDPOINTS", "http://minio:9000/bucket", "without a path or user"),
        ("TAILOR_ALLOWED_PRIORITY_CLASSES", "Batch", "lowercase DNS name"),
        ("TAILOR_ALLOWED_TOLERATION_KEYS", "Bad Key", "label key"),
        ("TAILOR_ALLOWED_TOLERATION_KEYS", "Example.com/gpu", "label key"),
    ],
)
def test_a_bad_entry_is_named(name: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError, match=name) as error:
        load_settings({name: value})
    assert words in str(error.value)
