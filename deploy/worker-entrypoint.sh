#!/bin/bash
# Starts the worker the container's WORKER_MODE names: pull (default), agent or standby.
#
#   pull     botyard worker   claims jobs from the store (DATABASE_URL, BOTYARD_AUTOMATIONS)
#   agent    botyard agent    seed 002's worker service on BOTYARD_AGENT_PORT (8621)
#   standby  botyard standby  seed 000's one-shot task server on TASK_SERVER_PORT (8080);
#                             the container exits 0 or 1 after the task: restart it "always"
#
# Seed 003's options come from the environment too: WORKER_ID, MAX_RETRIES,
# HEALTH_CHECK_INTERVAL (seconds), WORKER_CONCURRENCY, WORKER_QUEUES. Arguments given to the
# container are passed on to the command. "healthcheck" as the only argument probes the mode.
set -euo pipefail

mode="${WORKER_MODE:-pull}"

if [[ "${1:-}" == "healthcheck" ]]; then
    case "$mode" in
        standby) port="${TASK_SERVER_PORT:-8080}" ;;
        agent) port="${BOTYARD_AGENT_PORT:-8621}" ;;
        *)  # a pull worker has no port: its process must be alive (its heartbeat is in /workers)
            exec python - <<'PY'
import pathlib, sys
alive = any(
    b"botyard" in p.read_bytes() and b"worker" in p.read_bytes()
    for p in pathlib.Path("/proc").glob("[0-9]*/cmdline")
    if p.exists()
)
sys.exit(0 if alive else 1)
PY
            ;;
    esac
    exec python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=4)" \
        "http://127.0.0.1:${port}/health"
fi

options=()
if [[ -n "${WORKER_ID:-}" ]]; then options+=(--worker-id "$WORKER_ID"); fi
if [[ -n "${WORKER_CONCURRENCY:-}" ]]; then options+=(--concurrency "$WORKER_CONCURRENCY"); fi
if [[ -n "${WORKER_QUEUES:-}" ]]; then options+=(--queues "$WORKER_QUEUES"); fi

case "$mode" in
    pull)
        if [[ -n "${MAX_RETRIES:-}" ]]; then options+=(--max-retries "$MAX_RETRIES"); fi
        if [[ -n "${HEALTH_CHECK_INTERVAL:-}" ]]; then
            options+=(--health-check-interval "$HEALTH_CHECK_INTERVAL")
        fi
        exec botyard worker "${options[@]}" "$@"
        ;;
    agent)
        exec botyard agent "${options[@]}" "$@"
        ;;
    standby)
        exec botyard standby "$@"
        ;;
    *)
        echo "WORKER_MODE must be pull, agent or standby (got '$mode')" >&2
        exit 2
        ;;
esac
