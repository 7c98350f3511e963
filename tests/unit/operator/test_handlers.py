from tailor_operator.handlers import owner_job
from tailor_operator.reconciler import OwnWrites


def test_the_owner_is_the_controlling_trainingjob() -> None:
    body = {
        "metadata": {
            "labels": {"tailor.dev/job": "hashed-label"},
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": "other", "controller": False},
                {"kind": "TrainingJob", "name": "insects", "controller": True},
            ],
        }
    }
    assert owner_job(body) == "insects"


def test_without_owner_references_the_job_label_is_used() -> None:
    assert owner_job({"metadata": {"labels": {"tailor.dev/job": "insects"}}}) == "insects"
    assert owner_job({"metadata": {}}) is None


def test_own_writes_are_recognised_per_job_and_version() -> None:
    writes = OwnWrites()
    writes.remember(("ns", "a"), "41")
    assert writes.is_own(("ns", "a"), "41")
    assert not writes.is_own(("ns", "a"), "42")  # someone else wrote after us
    assert not writes.is_own(("ns", "b"), "41")
    assert not writes.is_own(("ns", "a"), None)
    writes.forget(("ns", "a"))
    assert not writes.is_own(("ns", "a"), "41")
