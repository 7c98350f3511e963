#!/usr/bin/env bash
# Builds the binaries a Go tools module under hack/tools/ pins, once per pinned
# version, into a cache outside the repository. Prints the cache folder.
#
#   hack/build-tools.sh kubernetes   ->  ~/.cache/tailor/bin/kubernetes-v1.37.2-<sum>/
#
# The folder name carries the pinned version and a digest of go.mod and go.sum,
# so a changed pin builds anew and an unchanged one is never rebuilt.
set -euo pipefail
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly

name=${1:?usage: build-tools.sh MODULE   (a folder under hack/tools)}
here=$(cd "$(dirname "$0")" && pwd)
module="$here/tools/$name"
[ -f "$module/go.mod" ] || { echo "build-tools: no Go module at $module" >&2; exit 2; }

cache_root=${TAILOR_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tailor/bin}
version=$(awk '/^require/ && NF==3 {print $3; exit}' "$module/go.mod")
[ -n "$version" ] || version=$(awk '/^require \(/ {getline; print $2; exit}' "$module/go.mod")
# Everything that shapes the binaries: the pins, our own Go files, extra link flags.
digest=$(cat "$module/go.mod" "$module/go.sum" "$module"/*.go \
        $(ls "$module/ldflags" "$module/tags" "$module/cgo" 2>/dev/null) \
    | sha256sum | cut -c1-10)
out="$cache_root/$name-$version-$digest"

if [ -f "$out/.complete" ]; then
    echo "$out"
    exit 0
fi

mkdir -p "$cache_root"
tmp=$(mktemp -d "$cache_root/.$name.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$module"
# tools.go names the commands as blank imports (the usual tools-module idiom);
# a module without one is itself the command (a main.go wrapping a library's Main).
if [ -f tools.go ]; then
    mapfile -t packages < <(sed -n 's/^[[:space:]]*_ "\(.*\)"$/\1/p' tools.go)
    [ "${#packages[@]}" -gt 0 ] || { echo "build-tools: tools.go in $module names no command" >&2; exit 2; }
else
    packages=(.)
fi
start=$(date +%s)
echo "build-tools: building ${packages[*]} ($version)" >&2
# Static, stripped binaries: nothing on the machine has to match them.
# An optional ldflags file adds link flags (kubernetes stamps its version with it);
# an optional tags file adds build tags; a cgo file turns cgo on (runc links
# libseccomp that way) and names the Debian packages it needs.
extra_ldflags=$(grep -v '^#' ldflags 2>/dev/null | tr '\n' ' ' || true)
tags=$(grep -v '^#' tags 2>/dev/null | tr '\n' ' ' | xargs || true)
cgo=0
if [ -f cgo ]; then
    cgo=1
    for pkg in $(grep -v '^#' cgo); do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || { echo "build-tools: $name needs Debian's $pkg: apt-get install $pkg" >&2; exit 3; }
    done
fi
CGO_ENABLED=$cgo go build -trimpath -tags="$tags" -ldflags="-s -w $extra_ldflags" \
    -o "$tmp/" "${packages[@]}"
chmod 755 "$tmp"
touch "$tmp/.complete"
# Another build of the same version may have finished first: keep whichever landed.
if ! mv -T "$tmp" "$out" 2>/dev/null; then
    [ -f "$out/.complete" ] || { rm -rf "$out"; mv -T "$tmp" "$out"; }
fi
trap - EXIT
echo "build-tools: $name built in $(( $(date +%s) - start ))s" >&2
echo "$out"
