# Botyard orchestrator: the REST API and the maintenance jobs (no browser in this image:
# jobs' browsers run in the workers or in browser pods).
#   docker build -f deploy/orchestrator.Dockerfile -t botyard-orchestrator .
#   docker run -p 8620:8620 -e DATABASE_URL=postgresql://… -e JWT_SECRET=… botyard-orchestrator
# Extras: postgres and redis (Valkey) for the stores and the TOTP ledger; kubernetes because
# POST /browsers with BROWSER_PROVIDER=kubernetes provisions a browser pod from here, and the
# orchestrator sweeps the browser pods whose job no longer runs.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres,redis,kubernetes]"

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "botyard[postgres,redis,kubernetes]" \
    && rm -rf /wheels
RUN useradd --create-home --uid 10001 botyard && mkdir -p /data && chown botyard /data
USER botyard
WORKDIR /home/botyard
# /data: the SQLite file when DATABASE_URL is unset, the generated JWT secret when JWT_SECRET is
# unset, and the evidence files the API serves (share it with the workers, at the same path).
ENV BOTYARD_DATA_DIR=/data \
    BOTYARD_PORT=8620 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8620
# Liveness only: readiness (/health/ready, the store reachable) is for load balancers and
# Kubernetes, so that a database outage does not get every replica restarted.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request; scheme = 'https' if os.environ.get('SSL_CERT_PATH') else 'http'; urllib.request.urlopen(f\"{scheme}://127.0.0.1:{os.environ.get('BOTYARD_PORT', '8620')}/health/live\", timeout=4, context=ssl._create_unverified_context())"]
CMD ["botyard", "server", "--host", "0.0.0.0"]
