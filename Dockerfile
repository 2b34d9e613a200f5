# kameleoon-destination: the gRPC service in a slim, non-root image.
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" -t REGISTRY/kameleoon-destination:0.1.0 .
#   docker run --rm -p 50051:50051 -e KAMELEOON_API_KEY=... -e KAMELEOON_SITECODE=... REGISTRY/kameleoon-destination:0.1.0
# The generated stubs are committed in clients/python, so the build needs no protoc.
#
# Reproducible: the base image is pinned by digest (both stages: the same one),
# every dependency by version and sha256 (requirements/image.txt, made by
# tools/lock_image.sh), wheels only. deploy/README.md says how to refresh both.
# The base digest is the multi-arch index of python:3.11.16-slim-bookworm as
# recorded by docker-library/repo-info (repos/python/remote/3.11.16-slim-bookworm.md).

# Stage 1: the dependencies, then the project, into a virtualenv.
FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
# Dependencies in a layer of their own, before any source is copied: a change
# of code reuses it. Pinned, hash-checked, binary wheels only.
COPY requirements/image.txt ./requirements/image.txt
RUN /opt/venv/bin/pip install --require-hashes --no-deps --only-binary=:all: -r requirements/image.txt
# The project itself (the client package with the stubs, then the server): no
# dependency is fetched here (--no-deps), and the build backend is the locked one.
COPY pyproject.toml README.md ./
COPY clients/python ./clients/python
COPY service ./service
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation ./clients/python . \
    && /opt/venv/bin/pip check

# Stage 2: the runtime, the same base image so the venv's interpreter links stay valid.
FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kameleoon-destination" \
      org.opencontainers.image.description="gRPC service delivering Segment-spec analytics events to Kameleoon" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.16-slim-bookworm" \
      org.opencontainers.image.base.digest="sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f"
# The service's user, and the outbox directory it owns (queued delivery keeps its
# SQLite file there; deploy/variants/sqlite mounts a volume per pod on it).
RUN groupadd --system --gid 10001 kameleoon \
    && useradd --system --no-log-init --uid 10001 --gid 10001 \
       --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin kameleoon \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/kameleoon-destination
COPY --from=build /opt/venv /opt/venv
# Bytecode was compiled at install time; nothing is written at run time but the
# outbox, so the root filesystem can be mounted read-only (deploy/ does).
# XDG_STATE_HOME=/var/lib: queued delivery's default outbox is then
# /var/lib/kameleoon-destination/outbox.db, on the volume. It is opened only when
# queued delivery is the default (KAMELEOON_DELIVERY=queued) or KAMELEOON_OUTBOX is
# set, so a sync-only container writes nothing and runs on a read-only root.
# KAMELEOON_HEALTH_LISTEN: plaintext grpc.health.v1 for HEALTHCHECK and probes, TLS or not.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KAMELEOON_LOG_FORMAT=json \
    KAMELEOON_HEALTH_LISTEN=0.0.0.0:50052 \
    XDG_STATE_HOME=/var/lib
VOLUME ["/var/lib/kameleoon-destination"]
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# gRPC (CMD's --listen) and the plaintext health port (KAMELEOON_HEALTH_LISTEN).
EXPOSE 50051 50052
# grpc.health.v1 Check of the service on the health port (change with KAMELEOON_HEALTH_LISTEN).
# Exits 0 only when the answer is SERVING; an error or any other status exits 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; r = g.HealthStub(grpc.insecure_channel('127.0.0.1:50052')).Check(h.HealthCheckRequest(service='kameleoon.destination.v1.KameleoonDestination'), timeout=3); sys.exit(r.status != h.HealthCheckResponse.SERVING)"]
ENTRYPOINT ["kameleoon-destination"]
CMD ["serve", "--listen", "0.0.0.0:50051"]
