# syntax=docker/dockerfile:1
# One image for the four services and the migration Job: they share the code and the lock,
# so one build, one scan and one tag serve them all; each Deployment (deploy/k8s) sets the
# command. `make image` builds it with buildah (README, "The image"); with Docker:
#   docker build --platform linux/amd64 -t registry.example.com/service-quality:0.1.0 .
# linux/amd64 only: faust-streaming 0.15.3 publishes no arm64 wheel, and the image has no compiler.

# python:3.11.14-slim-bookworm, pinned by the digest of its multi-architecture index. Where no registry can
# be reached, `make image` passes a Debian bookworm base made with mmdebstrap (its python3 is 3.11 too).
ARG BASE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
FROM ${BASE} AS app

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    DATA_DIR=/data \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The user the services run as (Kubernetes' runAsUser matches), and its only writable folder.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin app \
    && mkdir /data \
    && chown 10001:10001 /data

WORKDIR /app

# Dependencies first, so a code change reuses this layer. Only the runtime dependencies, as
# requirements-runtime.lock pins them (requirements.lock's versions, without the development tools), each
# file checked against its hashes; wheels only. Into a virtual environment under /opt, so the same steps
# work on either base (Debian's own python3 refuses to install into the system, PEP 668).
COPY requirements-runtime.lock ./
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: --no-deps --require-hashes \
        --requirement requirements-runtime.lock

# The code, owned by root: the services cannot change it. Compiled now because the root
# filesystem is read-only at run time.
COPY shared/ shared/
COPY services/ services/
RUN /opt/venv/bin/python -m compileall -q shared services

USER 10001:10001
EXPOSE 8000
