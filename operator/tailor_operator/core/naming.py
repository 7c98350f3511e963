"""Deterministic names for the objects a TrainingJob owns.

The same (job, trial, attempt) always gives the same name, so a repeated create
is a 409, never a duplicate pod. The job's UID is part of the name: a job
deleted and re-created under its old name never adopts the old job's leftovers.
"""

import hashlib
import re

MAX_NAME = 63  # a DNS label: pod hostnames and label values share this limit
HASH_CHARS = 8
_INVALID = re.compile(r"[^a-z0-9-]+")


def short_hash(text: str, chars: int = HASH_CHARS) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:chars]


def dns_label(*parts: str) -> str:
    """Parts joined by '-', lower-cased, and hashed when longer than 63 characters."""
    base = _INVALID.sub("-", "-".join(parts).lower()).strip("-")
    if len(base) <= MAX_NAME:
        return base
    keep = MAX_NAME - HASH_CHARS - 1
    return f"{base[:keep].rstrip('-')}-{short_hash(base)}"


def attempt_name(job: str, job_uid: str, trial: str, attempt: int) -> str:
    """The pod (and config map) of one attempt, e.g. insects-t0-2-1a2b3."""
    return dns_label(job, trial, str(attempt), short_hash(job_uid, 5))


def label_value(text: str) -> str:
    """A label value for any name: itself when it fits, else truncated and hashed."""
    if len(text) <= MAX_NAME:
        return text
    keep = MAX_NAME - HASH_CHARS - 1
    return f"{text[:keep].rstrip('-._')}-{short_hash(text)}"
