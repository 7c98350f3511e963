#!/usr/bin/env bash
# Stop at once, saying what to free, when a long command would run out of disk midway
# (CI once died 88 s in with "No space left on device" from pip, a disk full of old
# clones and test folders).
#   hack/disk-check.sh GIB WHAT [PATH...]   # default paths: . and ${TMPDIR:-/tmp}
set -euo pipefail
need_gib=$1
what=$2
shift 2
paths=("$@")
[[ ${#paths[@]} == 0 ]] && paths=(. "${TMPDIR:-/tmp}")
for path in "${paths[@]}"; do
    free_kib=$(df -Pk "$path" | awk 'NR == 2 {print $4}')
    free_gib=$(( free_kib / 1024 / 1024 ))
    if (( free_gib < need_gib )); then
        echo "not enough free disk for $what: $need_gib GiB needed under $path, $free_gib GiB free." >&2
        echo "Old pytest folders (${TMPDIR:-/tmp}/pytest-of-$(id -un)), clones with their .venv" >&2
        echo "(about 6 GB each) and ~/.cache/go-build are the usual places to free it." >&2
        exit 1
    fi
done
