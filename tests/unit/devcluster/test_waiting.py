import pytest

from tailor_devcluster.waiting import NeverHappened, eventually


def test_returns_the_first_truthy_value():
    answers = iter([None, False, {"phase": "Running"}])
    assert eventually("phase", lambda: next(answers), timeout=5, interval=0) == {"phase": "Running"}


def test_errors_while_waiting_are_retried():
    calls = {"n": 0}

    def probe():
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionRefusedError("not yet")
        return "up"

    assert eventually("server", probe, timeout=5, interval=0) == "up"


def test_gives_up_naming_what_and_the_last_error():
    def probe():
        raise ConnectionRefusedError("port 1 closed")

    with pytest.raises(NeverHappened, match=r"the API server: not seen within 0s .*port 1 closed"):
        eventually("the API server", probe, timeout=0, interval=0)
