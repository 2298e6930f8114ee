# The service's own image: `docker build -t watcher-es .`, or `docker compose up -d` (compose.yaml builds it).
# tests/test_container.py runs the build stage's RUN steps as plain commands in a fresh venv.

# Build: the package and its runtime dependencies in a venv of their own (no test extras, no build tools after).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY avro ./avro
COPY eventstore ./eventstore
COPY projections ./projections
RUN python -m venv /opt/watcher-es
RUN /opt/watcher-es/bin/pip install --no-cache-dir --disable-pip-version-check /src
# Byte-compiled once here: the CLI starts twice as fast where bytecode is not written at run time.
RUN /opt/watcher-es/bin/python -m compileall -q /opt/watcher-es/lib

# Run: the venv alone, as a user that is not root, the CLI as the entry point.
FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --home-dir /data watcher-es \
    && mkdir /data && chown watcher-es /data
COPY --from=build /opt/watcher-es /opt/watcher-es
ENV PATH=/opt/watcher-es/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    WATCHER_ES_DB=/data/watcher-es.db \
    WATCHER_ES_METRICS_PORT=9464
USER watcher-es
WORKDIR /data
VOLUME /data
# /metrics and /healthz (docs/operations.md)
EXPOSE 9464
ENTRYPOINT ["watcher-es"]
CMD ["serve"]
