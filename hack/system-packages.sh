#!/usr/bin/env bash
# The Debian packages the README's commands need, installed when missing.
#   hack/system-packages.sh demo   # make demo: prometheus
#   hack/system-packages.sh test   # make test: prometheus (promtool), lua5.1, chromium
#   hack/system-packages.sh node   # a real node: runc's libseccomp-dev, buildah, debootstrap, ...
# As root it installs them with apt-get; otherwise it prints the one command to run.
set -euo pipefail
want=(prometheus)                    # the demo's and the tests' metrics server
commands=(prometheus)
if [[ "${1:-test}" == node ]]; then
    # runc links libseccomp (cgo); buildah and debootstrap make the images; the kubelet
    # and the CNI plugins call iptables, kube-proxy nft; gcc builds runc's cgo and the
    # pause binary.
    want=(libseccomp-dev buildah debootstrap iptables nftables gcc)
    commands=(buildah debootstrap iptables nft gcc)
    dpkg-query -W -f='${Status}' libseccomp-dev 2>/dev/null | grep -q 'install ok installed' \
        || commands+=(libseccomp-dev-is-missing)
fi
if [[ "${1:-test}" == test ]]; then
    # promtool (with prometheus) tests the alerts; lua5.1 runs the Argo CD health
    # check's tests; headless chromium renders the evaluation report in its tests.
    want+=(lua5.1 chromium)
    commands+=(promtool lua5.1 chromium)
fi
missing=0
for command in "${commands[@]}"; do
    command -v "$command" >/dev/null || missing=1
done
[[ $missing == 0 ]] && exit 0
install=(apt-get install -y -qq --no-install-recommends "${want[@]}")
if [[ $(id -u) != 0 ]]; then
    echo "missing Debian packages; run: sudo apt-get update && sudo ${install[*]}" >&2
    exit 1
fi
echo "installing Debian packages: ${want[*]} (once)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
"${install[@]}" >/dev/null
