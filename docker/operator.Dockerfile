# The Tailor operator: Python and the operator's own dependencies, no torch (about
# 200 MB). Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t ghcr.io/tailor-dev/tailor-operator:0.1.0 .
# Pin the base by digest for reproducible builds:
#   --build-arg PYTHON_IMAGE=python:3.12-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY operator/ operator/
COPY trainer/ trainer/
COPY contract/ contract/
COPY devcluster/ devcluster/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# requirements.lock pins every version; as a constraints file it installs only what the
# wheel's base dependencies need (the trainer extra, and so torch, is not asked for).
COPY --from=build /wheels /wheels
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --constraint /tmp/requirements.lock /wheels/tailor-*.whl \
    && rm -rf /wheels /tmp/requirements.lock
# A numeric user, so the kubelet can check runAsNonRoot.
USER 65532:65532
ENTRYPOINT ["tailor-operator"]
