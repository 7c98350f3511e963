# The Tailor trainer: CUDA, torch and timm, run as validation and trial pods. Build from
# the repository root (several GB; needs no GPU to build):
#   docker build -f docker/trainer.Dockerfile -t ghcr.io/tailor-dev/tailor-trainer:0.1.0 .
# torch's wheels carry their own CUDA libraries (nvidia-* in requirements.lock); the CUDA
# base image provides the driver-side setup NVIDIA's container toolkit expects.
# Pin the base by digest for reproducible builds:
#   --build-arg CUDA_IMAGE=nvidia/cuda:13.0.1-base-ubuntu24.04@sha256:...
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-base-ubuntu24.04

FROM ${CUDA_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/tailor/bin:$PATH \
    HOME=/tmp
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The trainer's packages only (it imports nothing else of the project), so changes to
# the operator, the dev cluster or the docs leave this image as it was; pyproject.toml
# names a readme, which the image does not need: an empty one stands in.
COPY pyproject.toml requirements.lock ./
COPY trainer/ trainer/
COPY contract/ contract/
# Exact versions from the lock; only the trainer extra's dependencies are installed.
RUN python3 -m venv /opt/tailor \
    && touch README.md \
    && /opt/tailor/bin/pip install --no-cache-dir --constraint requirements.lock ".[trainer]" \
    && rm -rf /src
WORKDIR /workspace
# A numeric user, so the kubelet can check runAsNonRoot; the operator runs trial pods
# as 65532 (TAILOR_RUN_AS_USER) with /dev/shm and the config mounted.
USER 65532:65532
ENTRYPOINT ["tailor-train"]
