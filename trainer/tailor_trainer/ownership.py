"""Which TrainingJob owns an output prefix: the one whose validation claimed it.

The claim is one small object, `<output>/tailor-job.json`, naming the job and its UID.
Validation (on the CPU, before any GPU) claims the job's prefix when it is empty, and
passes again for the same job (a retry, or an edited spec: same UID). A prefix claimed by
another job, or holding objects without a claim (an older Tailor's outputs, anything
else), is refused with a ConfigError that says what to do: nothing there is deleted or
overwritten. A trial attempt checks the claim again before it trains.
"""

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from tailor_trainer.errors import ConfigError
from tailor_trainer.storage import ObjectNotFound, Storage, StorageError, join

log = logging.getLogger(__name__)

MARKER = "tailor-job.json"


class OutputTaken(ConfigError):
    """The output prefix holds another job's outputs, or objects no job claimed."""


@dataclass(frozen=True)
class Owner:
    job: str  # namespace/name
    uid: str


def prefix_of(output: str) -> str:
    """The prefix as a folder: s3://b/team/x and s3://b/team/x/ are one prefix, and
    never s3://b/team/x-2/."""
    return output.rstrip("/") + "/"


def marker_uri(output: str) -> str:
    return join(prefix_of(output), MARKER)


def read_owner(storage: Storage, output: str) -> Owner | None:
    """The job named by the prefix's marker; None without one."""
    uri = marker_uri(output)
    try:
        data = storage.read(uri)
    except ObjectNotFound:
        return None
    try:
        document = json.loads(data)
        return Owner(job=str(document["job"]), uid=str(document["uid"]))
    except (ValueError, TypeError, KeyError):
        raise OutputTaken(
            f"spec.output {prefix_of(output)} has a {MARKER} that is not a Tailor job marker; "
            f"{_what_to_do(output)}"
        ) from None


def _what_to_do(output: str) -> str:
    return (
        f"choose another spec.output, or delete the objects under {prefix_of(output)} "
        f"(its {MARKER} included) to reuse it"
    )


def _taken(output: str, owner: Owner) -> OutputTaken:
    return OutputTaken(
        f"spec.output {prefix_of(output)} belongs to TrainingJob {owner.job} (uid {owner.uid}), "
        f"not to this job: its outputs are never resumed nor overwritten; "
        f"{_what_to_do(output)}"
    )


def _foreign_objects(storage: Storage, output: str) -> str | None:
    """An object under the prefix other than the marker, if there is one."""
    marker = marker_uri(output)
    found = [uri for uri in storage.list(prefix_of(output), limit=2) if uri != marker]
    return found[0] if found else None


def check(storage: Storage, output: str, uid: str) -> Owner | None:
    """The prefix's owner if it is this job, None if the prefix is empty; OutputTaken if
    another job claimed it or it holds objects no job claimed."""
    owner = read_owner(storage, output)
    if owner is not None:
        if owner.uid != uid:
            raise _taken(output, owner)
        return owner
    if (other := _foreign_objects(storage, output)) is not None:
        raise OutputTaken(
            f"spec.output {prefix_of(output)} already holds objects that no TrainingJob claimed "
            f"(e.g. {other}: an earlier job's outputs, or other files); a job starts only "
            f"on an empty output prefix or on its own; {_what_to_do(output)}"
        )
    return None


def claim(storage: Storage, output: str, job: str, uid: str) -> None:
    """Claims the prefix for this job unless it holds its marker already; OutputTaken
    when it may not. Two jobs claiming at once: one marker is written, the other job
    reads it back and is refused."""
    if check(storage, output, uid) is not None:
        log.info("output %s is this job's (%s)", prefix_of(output), MARKER)
        return
    document = {
        "job": job,
        "uid": uid,
        "claimed": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": "written by Tailor's validation: this prefix holds that TrainingJob's outputs",
    }
    created = storage.create(marker_uri(output), json.dumps(document, indent=2).encode())
    owner = read_owner(storage, output)
    if owner is None:
        raise StorageError(f"{marker_uri(output)}: not found right after it was written")
    if owner.uid != uid:
        raise _taken(output, owner)
    if created:
        log.info("claimed output %s for %s (uid %s)", prefix_of(output), job, uid)


def verify(storage: Storage, output: str, uid: str) -> None:
    """A trial's check before it trains: OutputTaken if the marker names another job. A
    missing marker passes (validation of an older Tailor, or a user who removed it)."""
    owner = read_owner(storage, output)
    if owner is None:
        log.warning("output %s has no %s; not claimed by any job", prefix_of(output), MARKER)
    elif owner.uid != uid:
        raise _taken(output, owner)
