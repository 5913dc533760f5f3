"""The deployment files under deploy/: compose, the orchestrator image, systemd units, Kubernetes.

No Docker engine, no systemd as PID 1 and no cluster run here, so each file goes through the
tool that checks it without one: ``docker compose config`` (or docker-compose 1.x),
``systemd-analyze verify`` and ``security --offline``, the Kubernetes JSON schemas shipped inside
kubernetes-validate (strict: an unknown field fails). The orchestrator image's health check is
run for real against a running ``botyard server``. Every variable the files set must be one
Botyard reads (or the service image's own), so a misspelt variable fails here instead of being
silently ignored in production.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel
from tests.tools import compose_command

from botyard.cli.config import env_names
from botyard.settings import Settings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
SYSTEMD = DEPLOY / "systemd"
KUBERNETES = DEPLOY / "kubernetes"
UNIT_BINARY = "/opt/botyard/bin/botyard"
NAMESPACE = "botyard"
# An older Kubernetes release and the newest one the package has schemas for.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


# -- the variables Botyard reads ---------------------------------------------------------------


def _settings_variables() -> set[str]:
    """Every variable the settings classes read (what ``botyard config`` lists, and aliases)."""
    names: set[str] = set()
    for field in Settings.model_fields.values():
        concern = field.annotation
        assert isinstance(concern, type) and issubclass(concern, BaseModel)
        for name, inner in concern.model_fields.items():
            names.update(env_names(concern, name, inner))
    return names


def _entrypoint_variables() -> set[str]:
    """The worker image's entrypoint reads seed 003's names (WORKER_ID, MAX_RETRIES, …)."""
    script = (DEPLOY / "worker-entrypoint.sh").read_text()
    return set(re.findall(r"\$\{(\w+)", script))


KNOWN = (
    _settings_variables()
    | _entrypoint_variables()
    # read outside the settings: a job's orchestrator and worker token (automations/context.py),
    # the CLI's token, the kubeconfig of the kubernetes browser provider
    | {"BOTYARD_URL", "BOTYARD_WORKER_TOKEN", "BOTYARD_TOKEN", "KUBECONFIG"}
    | {"PYTHONUNBUFFERED", "HOME"}
)
# Portal credentials are read by prefix (<PROVIDER>[_<ACCOUNT>]_EMAIL, …); the examples use
# seed 001's METROFIBER.
CREDENTIAL = re.compile(
    r"^METROFIBER(_[A-Z0-9]+)?_(EMAIL|USERNAME|PASSWORD|TOTP_SECRET|TOTP_ALGORITHM|TOTP_DIGITS"
    r"|TOTP_INTERVAL)$"
)
# Variables that belong to a third-party image, by image name.
IMAGE_OWN = {
    "postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"},
    "valkey/valkey": {"VALKEY_PASSWORD"},  # its command passes it to --requirepass
    "adminer": {"ADMINER_DEFAULT_SERVER"},
}


def _unknown(names: set[str], image: str = "") -> set[str]:
    own = IMAGE_OWN.get(image.split(":")[0], set())
    return {n for n in names if n not in KNOWN and n not in own and not CREDENTIAL.match(n)}


def test_the_known_variables_are_really_read() -> None:
    # A guard on the guard: the allow-list is made of what the code reads, not hand-written.
    assert {"DATABASE_URL", "JWT_SECRET", "JWT_SECRET_KEY", "VALKEY_HOST"} <= KNOWN
    assert {"BOTYARD_WORKER_SHUTDOWN_GRACE", "BROWSER_K8S_NAMESPACE", "WORKER_MODE"} <= KNOWN
    assert _unknown({"BOTYARD_WORKER_SHUTDOWN_GRAC", "DATABSE_URL"}) == {
        "BOTYARD_WORKER_SHUTDOWN_GRAC",
        "DATABSE_URL",
    }


# -- docker compose ----------------------------------------------------------------------------


def _env_keys(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if re.match(r"^[A-Z_]+=", line))
    return {key: value for key, value in pairs}


def _filled_env(tmp_path: Path) -> Path:
    """deploy/.env.example with every empty value filled in, as an operator would."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        if re.fullmatch(r"[A-Z_]+=", line):
            line += secrets.token_hex(32)
        lines.append(line)
    path = tmp_path / ".env"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run_config(env_file: Path, *profiles: str) -> subprocess.CompletedProcess[str]:
    options = [arg for p in profiles for arg in ("--profile", p)]
    # Only the env file speaks: a variable of the caller's shell would win over it.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        [*compose_command(), "-f", str(COMPOSE), "--env-file", str(env_file), *options, "config"],
        env=env,
        cwd=env_file.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _services(env_file: Path, *profiles: str) -> dict[str, dict[str, Any]]:
    """The services a `docker compose up` with these profiles starts."""
    result = _run_config(env_file, *profiles)
    assert result.returncode == 0, result.stderr
    services: dict[str, dict[str, Any]] = yaml.safe_load(result.stdout)["services"]
    # Compose v2 leaves inactive profiles out of `config`; docker-compose 1.x lists them.
    return {
        name: service
        for name, service in services.items()
        if not service.get("profiles") or set(service["profiles"]) & set(profiles)
    }


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _replicas(service: dict[str, Any]) -> int:
    return int(service.get("scale") or (service.get("deploy") or {}).get("replicas") or 1)


def _workers(services: dict[str, dict[str, Any]]) -> int:
    return sum(
        _replicas(s) for s in services.values() if _environment(s).get("WORKER_MODE") == "pull"
    )


def _depends(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def test_compose_default_profile(tmp_path: Path) -> None:
    env_file = _filled_env(tmp_path)
    services = _services(env_file)
    assert set(services) == {"postgres", "valkey", "orchestrator", "worker"}
    assert _workers(services) == 1

    given = _env_keys(env_file.read_text())
    orchestrator = _environment(services["orchestrator"])
    assert orchestrator["JWT_SECRET"] == given["JWT_SECRET"]
    assert orchestrator["ADMIN_PASSWORD"] == given["ADMIN_PASSWORD"]
    assert orchestrator["BOTYARD_WORKER_TOKEN"] == given["BOTYARD_WORKER_TOKEN"]
    assert orchestrator["DATABASE_URL"] == (
        f"postgresql://botyard:{given['POSTGRES_PASSWORD']}@postgres:5432/botyard"
    )
    assert orchestrator["VALKEY_HOST"] == "valkey"
    assert orchestrator["VALKEY_PASSWORD"] == given["VALKEY_PASSWORD"]
    assert _depends(services["orchestrator"]) == {
        "postgres": "service_healthy",
        "valkey": "service_healthy",
    }
    assert services["postgres"]["healthcheck"]["test"]
    assert services["valkey"]["healthcheck"]["test"]
    assert "8620" in json.dumps(services["orchestrator"]["ports"])

    worker = _environment(services["worker"])
    assert worker["WORKER_MODE"] == "pull"
    assert worker["BOTYARD_URL"] == "http://orchestrator:8620"
    assert worker["DATABASE_URL"] == orchestrator["DATABASE_URL"]
    assert worker["BOTYARD_WORKER_TOKEN"] == orchestrator["BOTYARD_WORKER_TOKEN"]
    assert "JWT_SECRET" not in worker and "ADMIN_PASSWORD" not in worker
    assert services["worker"]["shm_size"]
    assert services["worker"]["build"]["dockerfile"] == "deploy/worker.Dockerfile"
    assert services["orchestrator"]["build"]["dockerfile"] == "deploy/orchestrator.Dockerfile"
    assert _depends(services["worker"]) == {"orchestrator": "service_healthy"}
    # Evidence is written by the workers and served by the orchestrator: one volume, one path.
    assert _mount(services["worker"], "/data") == _mount(services["orchestrator"], "/data")


def _mount(service: dict[str, Any], target: str) -> str:
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            if rest.split(":")[0] == target:
                return source
        elif volume.get("target") == target:
            return str(volume.get("source"))
    raise AssertionError(f"nothing mounted at {target}")


def test_compose_scale_profile_runs_three_workers(tmp_path: Path) -> None:
    services = _services(_filled_env(tmp_path), "scale")
    assert {"postgres", "valkey", "orchestrator", "worker"} <= set(services)
    assert _workers(services) == 3


def test_compose_dev_profile_adds_adminer(tmp_path: Path) -> None:
    services = _services(_filled_env(tmp_path), "dev")
    assert set(services) == {"postgres", "valkey", "orchestrator", "worker", "adminer"}
    assert _environment(services["adminer"])["ADMINER_DEFAULT_SERVER"] == "postgres"
    assert _workers(services) == 1


def test_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    untouched = tmp_path / ".env"
    shutil.copy(ENV_EXAMPLE, untouched)
    result = _run_config(untouched)
    assert result.returncode != 0
    required = ("POSTGRES_PASSWORD", "VALKEY_PASSWORD", "JWT_SECRET", "ADMIN_PASSWORD")
    assert any(f"set {name} in deploy/.env" in result.stderr for name in required), result.stderr


def test_env_example_lists_every_compose_variable() -> None:
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", COMPOSE.read_text()))
    listed = set(_env_keys(ENV_EXAMPLE.read_text()))
    assert used == listed


def test_compose_services_set_only_variables_someone_reads(tmp_path: Path) -> None:
    services = _services(_filled_env(tmp_path), "scale", "dev")
    for name, service in services.items():
        assert not _unknown(set(_environment(service)), service.get("image", "")), name


# -- the orchestrator image --------------------------------------------------------------------

DOCKERFILE = DEPLOY / "orchestrator.Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _one(keyword: str) -> str:
    values = [rest for k, rest in _instructions() if k == keyword]
    assert len(values) == 1, (keyword, values)
    return values[0]


def test_the_orchestrator_dockerfile() -> None:
    steps = _instructions()
    stages = [rest for k, rest in steps if k == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS build")  # wheels, then a slim runtime
    for k, rest in steps:
        if k == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source
    runs = " ".join(rest for k, rest in steps if k == "RUN")
    assert runs.count("[postgres,redis,kubernetes]") == 2  # built and installed; no browser
    assert "browser" not in runs
    assert _one("USER") == "botyard" and "--uid 10001" in runs
    assert _one("EXPOSE") == "8620"
    assert json.loads(_one("VOLUME")) == ["/data"]
    assert json.loads(_one("CMD")) == ["botyard", "server", "--host", "0.0.0.0"]
    env = dict(re.findall(r"(\w+)=(\S+)", _one("ENV")))
    assert env["BOTYARD_DATA_DIR"] == "/data" and env["BOTYARD_PORT"] == "8620"
    assert not _unknown(set(env))
    assert "curl" not in _one("HEALTHCHECK")


def _healthcheck() -> list[str]:
    command = _one("HEALTHCHECK").split(" CMD ", 1)[1]
    argv: list[str] = json.loads(command)
    assert argv[0] == "python" and "/health/live" in argv[-1]
    return [sys.executable, *argv[1:]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_server(tmp_path: Path, port: int) -> subprocess.Popen[bytes] | None:
    """`botyard server` as the image's CMD starts it; None if another process took the port."""
    command = json.loads(_one("CMD"))
    command[0] = str(Path(sys.executable).parent / "botyard")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(BOTYARD_DATA_DIR=str(tmp_path), BOTYARD_PORT=str(port), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while proc.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).is_success:
                return proc
        if time.monotonic() > deadline:
            _stop(proc)
            raise AssertionError("botyard server did not answer within 30 s")
        time.sleep(0.1)
    assert proc.stderr is not None
    errors = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    assert "address already in use" in errors, errors
    return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stderr:
        proc.stderr.close()


@contextlib.contextmanager
def _server(tmp_path: Path) -> Iterator[int]:
    """A running `botyard server` and its port (a free port can be taken before it binds)."""
    for _ in range(3):
        port = _free_port()
        proc = _start_server(tmp_path, port)
        if proc is not None:
            try:
                yield port
            finally:
                _stop(proc)
            return
    raise AssertionError("no free port for botyard server after 3 tries")


def test_the_orchestrator_healthcheck_probes_a_live_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_PATH"}
    with _server(tmp_path) as port:
        env["BOTYARD_PORT"] = str(port)
        assert subprocess.run(_healthcheck(), env=env, timeout=10).returncode == 0
    down = subprocess.run(_healthcheck(), env=env, timeout=10, capture_output=True)
    assert down.returncode != 0  # nothing listens any more


# -- systemd -----------------------------------------------------------------------------------

UNITS = sorted(SYSTEMD.glob("*.service"))
WORKER_UNIT = SYSTEMD / "botyard-worker@.service"


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found:
        return found
    message = "systemd-analyze is not installed (Debian: apt-get install systemd)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _checkable_copies(tmp_path: Path) -> list[Path]:
    """The units with ExecStart pointing at this checkout's botyard: verify wants it to exist."""
    copies = []
    for unit in UNITS:
        text = unit.read_text()
        assert f"ExecStart={UNIT_BINARY} " in text, unit.name
        copy = tmp_path / unit.name
        copy.write_text(text.replace(UNIT_BINARY, str(Path(sys.executable).parent / "botyard")))
        copies.append(copy)
    return copies


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    assert {u.name for u in UNITS} == {"botyard-worker@.service", "botyard-orchestrator.service"}
    result = subprocess.run(
        [analyze, "verify", "--man=no", *map(str, _checkable_copies(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on a misspelt key or a bad value and only says so: any output is a failure.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


@pytest.mark.parametrize("unit", [u.name for u in UNITS])
def test_systemd_units_are_hardened(unit: str, tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    copy = next(c for c in _checkable_copies(tmp_path) if c.name == unit)
    # Exposure is 0.0 (locked down) to 10.0; --threshold is in tenths. Both units score 3.5.
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=40", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-400:] + result.stderr


def _unit(path: Path) -> dict[str, list[str]]:
    """Key → every value it is given, across sections (enough for these units)."""
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)\s*(s|sec|min|m)?", value)
    assert match, value
    return int(match[1]) * (60 if match[2] in ("min", "m") else 1)


def test_the_worker_unit() -> None:
    unit = _unit(WORKER_UNIT)
    (exec_start,) = unit["ExecStart"]
    assert exec_start.startswith(f"{UNIT_BINARY} worker --worker-id ") and "%i" in exec_start
    assert unit["Restart"] == ["on-failure"] and _seconds(unit["RestartSec"][0]) > 0
    assert unit["KillMode"] == ["mixed"]  # SIGTERM to the worker only, then SIGKILL to all
    example = _env_keys((SYSTEMD / "worker.env.example").read_text())
    grace = max(
        float(WorkerSettings.model_fields["shutdown_grace"].default),
        float(example.get("BOTYARD_WORKER_SHUTDOWN_GRACE", 0)),
    )
    assert _seconds(unit["TimeoutStopSec"][0]) > grace
    assert unit["EnvironmentFile"] == ["/etc/botyard/worker.env", "-/etc/botyard/worker-%i.env"]
    assert unit["User"] == ["botyard"]
    for key in ("MemoryMax", "CPUQuota", "TasksMax"):
        assert unit[key], key
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
    }.items():
        assert unit[key] == [value], key
    assert "/var/lib/botyard" in unit["ReadWritePaths"]
    assert unit["RestrictAddressFamilies"]
    # Chromium: its sandbox's namespaces allowed, its JIT not refused.
    assert {"user", "pid", "net"} <= set(unit["RestrictNamespaces"][0].split())
    assert "MemoryDenyWriteExecute" not in unit


def test_systemd_files_set_only_variables_botyard_reads() -> None:
    for unit in UNITS:
        for assignment in _unit(unit).get("Environment", []):
            names = set(re.findall(r"(\w+)=", assignment))
            assert names and not _unknown(names), unit.name
    example = (SYSTEMD / "worker.env.example").read_text()
    names = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.M))
    assert {"DATABASE_URL", "BOTYARD_URL", "BOTYARD_WORKER_TOKEN"} <= names
    assert not _unknown(names)


# -- Kubernetes --------------------------------------------------------------------------------


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        with path.open() as stream:
            found += [(path.name, doc) for doc in yaml.safe_load_all(stream) if doc]
    return found


def _kind(kind: str, name: str) -> dict[str, Any]:
    matches = [d for _, d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, (kind, name)
    return matches[0]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def _validate(document: dict[str, Any], version: str, where: str) -> None:
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        # The exception's own text carries the whole schema: the message and the path suffice.
        path = "/".join(map(str, exc.path))
        raise AssertionError(f"{where}: {document['kind']} at {path}: {exc.message}") from None


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_match_the_schemas(version: str) -> None:
    documents = _documents()
    assert {f for f, _ in documents} >= {
        "orchestrator.yaml",
        "worker.yaml",
        "secret.example.yaml",
        "configmap.yaml",
        "browser-rbac.yaml",
    }
    for filename, document in documents:
        if filename == "browser-pod-template.yaml":
            # Botyard names each pod it creates from the template.
            document = {**document, "metadata": {**document["metadata"], "name": "template"}}
        _validate(document, version, filename)


def test_kubernetes_objects_live_in_the_botyard_namespace() -> None:
    for filename, document in _documents():
        if filename != "browser-pod-template.yaml":
            assert document["metadata"]["namespace"] == NAMESPACE, filename


def test_the_orchestrator_deployment() -> None:
    deployment = _kind("Deployment", "botyard-orchestrator")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    (port,) = container["ports"]
    assert port["containerPort"] == 8620
    _reads_the_config_and_the_secret(container)

    service = _kind("Service", "botyard-orchestrator")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in (port["name"], 8620)
    assert "sessionAffinity" not in service["spec"]  # any replica answers any request

    # POST /browsers and the orchestrator's pod sweep need the browser-pod Role too.
    account = pod["serviceAccountName"]
    _kind("ServiceAccount", account)
    assert _bound_to_browser_role(account)


def _bound_to_browser_role(account: str) -> bool:
    role = _kind("Role", "botyard-browser-pods")["metadata"]["name"]
    return any(
        d["roleRef"]["name"] == role
        and any(s["kind"] == "ServiceAccount" and s["name"] == account for s in d["subjects"])
        for _, d in _documents()
        if d["kind"] == "RoleBinding"
    )


def _reads_the_config_and_the_secret(container: dict[str, Any]) -> None:
    sources = container["envFrom"]
    config = next(s["configMapRef"]["name"] for s in sources if "configMapRef" in s)
    secret = next(s["secretRef"]["name"] for s in sources if "secretRef" in s)
    _kind("ConfigMap", config)
    _kind("Secret", secret)


def test_the_worker_deployment() -> None:
    deployment = _kind("Deployment", "botyard-worker")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert pod["serviceAccountName"] == "botyard-worker"
    _kind("ServiceAccount", "botyard-worker")  # from browser-rbac.yaml
    assert _bound_to_browser_role("botyard-worker")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    shm = next(m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm")
    volume = next(v for v in pod["volumes"] if v["name"] == shm["name"])
    assert volume["emptyDir"]["medium"] == "Memory"
    grace = float(_kind("ConfigMap", "botyard-config")["data"]["BOTYARD_WORKER_SHUTDOWN_GRACE"])
    assert pod["terminationGracePeriodSeconds"] > grace
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WORKER_MODE"] == "pull"
    _reads_the_config_and_the_secret(container)
    # Evidence: the workers write it where the orchestrator serves it from.
    orchestrator = _kind("Deployment", "botyard-orchestrator")["spec"]["template"]["spec"]
    claims = [
        {
            v["persistentVolumeClaim"]["claimName"]
            for v in p["volumes"]
            if "persistentVolumeClaim" in v
        }
        for p in (pod, orchestrator)
    ]
    assert claims[0] == claims[1] == {"botyard-data"}
    claim = _kind("PersistentVolumeClaim", "botyard-data")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_kubernetes_files_set_only_variables_botyard_reads() -> None:
    secret = _kind("Secret", "botyard")["stringData"]
    assert {
        "JWT_SECRET",
        "ADMIN_PASSWORD",
        "DATABASE_URL",
        "VALKEY_PASSWORD",
        "BOTYARD_WORKER_TOKEN",
    } <= set(secret)
    assert any(CREDENTIAL.match(name) for name in secret)
    assert not _unknown(set(secret))
    assert not _unknown(set(_kind("ConfigMap", "botyard-config")["data"]))
    for name in ("botyard-orchestrator", "botyard-worker"):
        env = {e["name"] for e in _container(_kind("Deployment", name)).get("env", [])}
        assert not _unknown(env), name


def test_the_kustomization_ties_the_manifests_together(tmp_path: Path) -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == NAMESPACE
    resources = set(kustomization["resources"])
    assert resources == {
        "browser-rbac.yaml",
        "browser-networkpolicy.yaml",
        "configmap.yaml",
        "orchestrator.yaml",
        "worker.yaml",
    }
    # The Secret is the operator's own; the pod template is a file the workers read.
    images = {i["name"] for i in kustomization["images"]}
    used = {
        _container(_kind("Deployment", n))["image"].split(":")[0]
        for n in ("botyard-orchestrator", "botyard-worker")
    }
    assert images == used
    kubectl = shutil.which("kubectl")
    if kubectl:  # an extra check where kubectl is at hand; the schemas above do not need it
        built = subprocess.run(
            [kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=60
        )
        assert built.returncode == 0, built.stderr
        for document in yaml.safe_load_all(built.stdout):
            assert document["metadata"]["namespace"] == NAMESPACE
            _validate(document, K8S_VERSIONS[-1], "kubectl kustomize")


def test_only_botyard_reaches_the_browser_pods() -> None:
    policy = yaml.safe_load((KUBERNETES / "browser-networkpolicy.yaml").read_text())
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "botyard"
    }
    [rule] = policy["spec"]["ingress"]
    [source] = rule["from"]
    allowed = source["podSelector"]["matchExpressions"][0]["values"]
    for name in ("worker.yaml", "orchestrator.yaml"):
        pods = [
            doc["spec"]["template"]["metadata"]["labels"]
            for doc in yaml.safe_load_all((KUBERNETES / name).read_text())
            if doc and doc["kind"] == "Deployment"
        ]
        assert pods and all(labels["app.kubernetes.io/component"] in allowed for labels in pods)
