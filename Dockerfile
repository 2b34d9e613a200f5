# kameleoon-destination: the gRPC service in a slim, non-root image.
#   docker build -t kameleoon-destination:0.1.0 .
#   docker run --rm -p 50051:50051 -e KAMELEOON_API_KEY=... -e KAMELEOON_SITECODE=... kameleoon-destination:0.1.0
# The generated stubs are committed in clients/python, so the build needs no protoc.

# Stage 1: build the project and its dependencies into a virtualenv.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY clients/python ./clients/python
COPY service ./service
RUN /opt/venv/bin/pip install --no-cache-dir ./clients/python .

# Stage 2: the runtime, the same base image so the venv's interpreter links stay valid.
FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 kameleoon \
    && useradd --system --no-log-init --uid 10001 --gid 10001 \
       --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin kameleoon
COPY --from=build /opt/venv /opt/venv
# Bytecode was compiled at install time; nothing is written at run time, so the
# root filesystem can be mounted read-only (deploy/deployment.yaml does).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KAMELEOON_LOG_FORMAT=json
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 50051
# grpc.health.v1 Check of the service on the port CMD listens on (change both together).
# Exits 0 only when the answer is SERVING; an error or any other status exits 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; r = g.HealthStub(grpc.insecure_channel('127.0.0.1:50051')).Check(h.HealthCheckRequest(service='kameleoon.destination.v1.KameleoonDestination'), timeout=3); sys.exit(r.status != h.HealthCheckResponse.SERVING)"]
ENTRYPOINT ["kameleoon-destination"]
CMD ["serve", "--listen", "0.0.0.0:50051"]
