# Botyard worker: pull daemon, agent or standby task server, with Debian's Chromium.
#   docker build -f deploy/worker.Dockerfile -t botyard-worker .
#   docker run -e WORKER_MODE=standby -e TASK_AUTH_TOKEN=… -p 8080:8080 botyard-worker
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres,redis,browser,kubernetes]"

FROM python:3.11-slim-bookworm
# chromium + chromium-driver from Debian: Playwright and Selenium drive the system browser,
# nothing is downloaded at run time. tini reaps the browser's children.
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium chromium-driver tini ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "botyard[postgres,redis,browser,kubernetes]" \
    && rm -rf /wheels
RUN useradd --create-home --uid 10001 botyard && mkdir -p /data && chown botyard /data
COPY deploy/worker-entrypoint.sh /usr/local/bin/botyard-worker-entrypoint
USER botyard
WORKDIR /home/botyard
ENV BOTYARD_DATA_DIR=/data \
    WORKER_MODE=pull \
    TASK_SERVER_HOST=0.0.0.0 \
    TASK_SERVER_PORT=8080 \
    BOTYARD_AGENT_HOST=0.0.0.0 \
    BOTYARD_AGENT_PORT=8621 \
    PYTHONUNBUFFERED=1 \
    BROWSER_PROVIDER=local
# Chromium's own sandbox needs user namespaces, which Docker's default seccomp profile refuses;
# the container is the sandbox here (add BROWSER_ARGS=--no-sandbox if Chromium will not start,
# or run with a seccomp profile that allows them).
VOLUME ["/data"]
EXPOSE 8080 8621
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["botyard-worker-entrypoint", "healthcheck"]
ENTRYPOINT ["tini", "--", "botyard-worker-entrypoint"]
