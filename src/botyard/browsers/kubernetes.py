"""``kubernetes``: one pod (and a ClusterIP service) per session, running a Playwright server.

:class:`BrowserPods` talks to the Kubernetes API; :class:`KubernetesProvider` turns its pods into
browser sessions. The ``kubernetes`` package is imported lazily (``botyard[kubernetes]``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from botyard.browsers.base import BrowserSession, Kind, new_session_id
from botyard.browsers.remote import attach, detach
from botyard.errors import BrowserUnavailable, ConfigurationError
from botyard.settings import BrowserSettings

log = logging.getLogger("botyard.browsers")

MANAGED_BY = "app.kubernetes.io/managed-by"
SESSION_LABEL = "botyard.io/session"
JOB_LABEL = "botyard.io/job"
LAST_USED = "botyard.io/last-used"
# Waiting reasons that will not clear up by themselves: fail now rather than at the timeout.
STUCK_REASONS = frozenset(
    {"ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError"}
)
FINISHED = frozenset({"Succeeded", "Failed"})


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def playwright_version(image: str) -> str:
    """The Playwright server version: the image's tag (its browsers), else the installed client."""
    if tagged := re.search(r":v(\d+\.\d+\.\d+)", image):
        return tagged.group(1)
    try:
        return metadata.version("playwright")
    except metadata.PackageNotFoundError:
        raise ConfigurationError(
            f"cannot tell which Playwright version {image} runs: use a tag like :v1.49.0-noble"
        ) from None


def default_image() -> str:
    """Playwright's own image at the installed client's version (a server of another version
    refuses the client)."""
    try:
        return f"mcr.microsoft.com/playwright:v{metadata.version('playwright')}-noble"
    except metadata.PackageNotFoundError:
        raise ConfigurationError(
            "BROWSER_K8S_IMAGE is unset and Playwright is not installed to choose one"
        ) from None


def default_pod(image: str, port: int) -> dict[str, Any]:
    """The pod Botyard starts from without ``BROWSER_K8S_POD_TEMPLATE`` (Playwright's image)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {},
        "spec": {
            # The browser needs no access to the API.
            "automountServiceAccountToken": False,
            # With a shared namespace the pause container is PID 1 and reaps Chromium's zombies
            # (what ``docker run --init`` does in Playwright's instructions).
            "shareProcessNamespace": True,
            # pwuser (uid 1001 in the noble images): Chromium's sandbox does not work as root.
            "securityContext": {"runAsUser": 1001, "runAsGroup": 1001, "runAsNonRoot": True},
            "containers": [
                {
                    "name": "browser",
                    "workingDir": "/home/pwuser",
                    "env": [{"name": "HOME", "value": "/home/pwuser"}],
                    # Chromium runs out of the container's default 64 MB of shared memory.
                    "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
                }
            ],
            "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
        },
    }


def _ready(status: dict[str, Any]) -> bool:
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _api_error(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    return f"HTTP {status}: {getattr(exc, 'reason', None) or exc}" if status else str(exc)


class BrowserPods:
    """Browser pods and their services in ``BROWSER_K8S_NAMESPACE``, on an injected ApiClient."""

    def __init__(self, api_client: Any, settings: BrowserSettings) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.core: Any = client.CoreV1Api(api_client)
        self.settings = settings
        self.namespace = settings.k8s_namespace
        self.port = settings.k8s_port
        self.image = settings.k8s_image or default_image()

    # -- the manifests -------------------------------------------------------

    def template(self) -> dict[str, Any]:
        path = self.settings.k8s_pod_template
        if path is None:
            return default_pod(self.image, self.port)
        import yaml

        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"BROWSER_K8S_POD_TEMPLATE {path}: {exc}") from None
        containers = loaded.get("spec", {}).get("containers") if isinstance(loaded, dict) else None
        if not containers or loaded.get("kind", "Pod") != "Pod":
            raise ConfigurationError(
                f"BROWSER_K8S_POD_TEMPLATE {path} is not a Pod manifest with a container"
            )
        return dict(loaded)

    def pod_manifest(self, name: str, session_id: str, job_id: int | None) -> dict[str, Any]:
        """The template, with what Botyard relies on set and what it leaves out filled in."""
        pod = self.template()
        meta = pod.setdefault("metadata", {})
        meta.pop("generateName", None)
        meta.update(name=name, namespace=self.namespace)
        meta.setdefault("labels", {}).update(self.labels(session_id, job_id))
        meta.setdefault("annotations", {})[LAST_USED] = _now().isoformat()
        spec = pod["spec"]
        spec["activeDeadlineSeconds"] = self.settings.k8s_deadline
        spec["restartPolicy"] = "Never"  # a restarted browser has lost its session anyway
        # The template's own choices win for the browser container; these fill the gaps.
        browser = spec["containers"][0]
        browser.setdefault("name", "browser")
        browser.setdefault("image", self.image)
        if not browser.get("command") and not browser.get("args"):
            version = playwright_version(browser["image"])
            browser["command"] = [
                *("npx", "-y", f"playwright@{version}", "run-server"),
                *("--port", str(self.port), "--host", "0.0.0.0"),
            ]
        browser.setdefault("ports", [{"name": "browser", "containerPort": self.port}])
        limits = {"cpu": self.settings.k8s_cpu_limit, "memory": self.settings.k8s_memory_limit}
        # Requests equal to limits: the Guaranteed QoS class, last to be evicted mid-job.
        browser.setdefault("resources", {"requests": dict(limits), "limits": limits})
        browser.setdefault(
            "readinessProbe",
            {"tcpSocket": {"port": self.port}, "periodSeconds": 1, "failureThreshold": 3},
        )
        return pod

    def labels(self, session_id: str, job_id: int | None) -> dict[str, str]:
        job = "none" if job_id is None else str(job_id)
        return {MANAGED_BY: "botyard", SESSION_LABEL: session_id, JOB_LABEL: job}

    def service_manifest(
        self, name: str, session_id: str, job_id: int | None, pod_uid: str | None
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "labels": self.labels(session_id, job_id)}
        if pod_uid:
            # Kubernetes' garbage collector deletes the service with its pod, whoever deletes it.
            owner = {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": pod_uid}
            meta["ownerReferences"] = [owner]
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "type": "ClusterIP",
                "selector": {SESSION_LABEL: session_id},
                "ports": [{"name": "browser", "port": self.port, "targetPort": self.port}],
            },
        }

    # -- the API -------------------------------------------------------------

    def create(self, session_id: str, job_id: int | None) -> tuple[str, str]:
        """Create the session's pod and service; returns their names (the same name)."""
        name = "botyard-browser-" + re.sub(r"[^a-z0-9-]", "-", session_id.lower())
        manifest = self.pod_manifest(name, session_id, job_id)
        try:
            pod = self.core.create_namespaced_pod(self.namespace, manifest)
        except Exception as exc:  # ApiException, or a template the client's models refuse
            raise BrowserUnavailable(
                f"cannot create pod {name}: {_api_error(exc)}", pod=name
            ) from None
        uid = self._as_dict(pod).get("metadata", {}).get("uid")
        try:
            self.core.create_namespaced_service(
                self.namespace, self.service_manifest(name, session_id, job_id, uid)
            )
        except Exception as exc:
            self.delete_quietly(name)
            message = f"cannot create service {name}: {_api_error(exc)}"
            raise BrowserUnavailable(message, pod=name) from None
        return name, name

    def wait_ready(self, pod_name: str, timeout: float) -> None:
        """Watch the pod until it is Ready; on failure or timeout delete it and its service."""
        try:
            self._wait_ready(pod_name, timeout)
        except BrowserUnavailable as exc:
            tail = self.logs(pod_name)
            self.delete_quietly(pod_name)
            if not tail:
                raise
            raise BrowserUnavailable(f"{exc}; its log ends with: {tail}", pod=pod_name) from None
        except BaseException:
            self.delete_quietly(pod_name)
            raise

    def logs(self, pod_name: str, lines: int = 20) -> str:
        """The end of the browser container's log, or "" (none yet, or not readable)."""
        try:
            text = self.core.read_namespaced_pod_log(
                pod_name, self.namespace, tail_lines=lines, _request_timeout=5
            )
        except Exception:
            return ""
        # One line, for the job's error: the last lines joined.
        return " | ".join(str(text or "").strip().splitlines())[-2000:]

    def delete_quietly(self, name: str) -> None:
        """:meth:`delete`, logging a failure: the pod's deadline ends it anyway."""
        try:
            self.delete(name, name)
        except BrowserUnavailable as exc:
            log.warning("browser pod cleanup: %s (its deadline will end it)", exc)

    def _wait_ready(self, pod_name: str, timeout: float) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        deadline = time.monotonic() + timeout
        last = "not seen yet"
        while (remaining := deadline - time.monotonic()) > 0:
            events = watch.Watch().stream(
                self.core.list_namespaced_pod,
                self.namespace,
                field_selector=f"metadata.name={pod_name}",
                timeout_seconds=math.ceil(remaining),
                _request_timeout=(min(remaining, 10.0), remaining),
            )
            try:
                with contextlib.closing(events):
                    for event in events:
                        if event["type"] == "DELETED":
                            raise BrowserUnavailable(f"pod {pod_name} was deleted", pod=pod_name)
                        last = self._check(pod_name, event["raw_object"])
                        if last == "ready":
                            return
                        if time.monotonic() >= deadline:
                            break
            except HTTPError:
                pass  # the read timed out (or the stream broke): check the deadline, watch again
            except ApiException as exc:
                message = f"cannot watch pod {pod_name}: {_api_error(exc)}"
                raise BrowserUnavailable(message, pod=pod_name) from None
            # The server ended the watch early: do not spin on it.
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        message = f"pod {pod_name} was not ready within {timeout:g} s ({last})"
        raise BrowserUnavailable(message, pod=pod_name)

    @staticmethod
    def _check(pod_name: str, pod: dict[str, Any]) -> str:
        """``ready``, or the pod's state; raises if it will never be ready."""
        status = pod.get("status") or {}
        phase = status.get("phase") or "Unknown"
        if phase in FINISHED:
            why = status.get("reason") or status.get("message") or "no reason given"
            message = f"pod {pod_name} ended ({phase}: {why}) before it was ready"
            raise BrowserUnavailable(message, pod=pod_name)
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in STUCK_REASONS:
                message = f"pod {pod_name} cannot start: {waiting['reason']} "
                message += waiting.get("message") or ""
                raise BrowserUnavailable(message.strip(), pod=pod_name)
        return "ready" if _ready(status) else phase

    def endpoint(self, service_name: str, kind: Kind = "playwright") -> str:
        host = f"{service_name}.{self.namespace}.svc:{self.port}"
        return f"http://{host}" if kind == "selenium" else f"ws://{host}/"

    def touch(self, pod_name: str) -> None:
        """Mark the pod as used now, so that no sweep takes it for idle."""
        patch = {"metadata": {"annotations": {LAST_USED: _now().isoformat()}}}
        try:
            self.core.patch_namespaced_pod(
                pod_name, self.namespace, patch, _content_type="application/merge-patch+json"
            )
        except Exception as exc:
            raise BrowserUnavailable(f"cannot update pod {pod_name}: {_api_error(exc)}") from None

    def delete(self, pod_name: str, service_name: str | None) -> None:
        """Delete the pod and its service; either being gone already is fine."""
        calls = [(self.core.delete_namespaced_pod, pod_name)]
        if service_name:
            calls.append((self.core.delete_namespaced_service, service_name))
        failures = []
        for call, name in calls:
            try:
                call(name, self.namespace, grace_period_seconds=0)
            except Exception as exc:
                if getattr(exc, "status", None) != 404:
                    failures.append(f"{name}: {_api_error(exc)}")
        if failures:
            raise BrowserUnavailable("cannot delete " + "; ".join(failures))

    def pods(self) -> list[dict[str, Any]]:
        """The managed pods, as the API's JSON (camelCase)."""
        try:
            found = self.core.list_namespaced_pod(
                self.namespace, label_selector=f"{MANAGED_BY}=botyard"
            )
        except Exception as exc:
            raise BrowserUnavailable(f"cannot list browser pods: {_api_error(exc)}") from None
        return [self._as_dict(pod) for pod in (self._as_dict(found).get("items") or [])]

    def sweep(self, idle_ttl: float, running_jobs: set[str] | None = None) -> list[str]:
        """Delete managed pods that are finished or unused for ``idle_ttl`` seconds; returns
        their names.

        A pod serving a job is busy for as long as the job runs, which can be longer than
        ``idle_ttl`` while nobody touches it. Without ``running_jobs`` (a worker's sweep, which
        cannot know) such pods are left to their own end, ``activeDeadlineSeconds``; with it (the
        orchestrator's sweep, from the store) they go once their job no longer runs.
        """
        now = _now()
        swept = []
        for pod in self.pods():
            meta = pod.get("metadata", {})
            if meta.get("deletionTimestamp"):
                continue  # going already
            phase = (pod.get("status") or {}).get("phase")
            used = _parse_time((meta.get("annotations") or {}).get(LAST_USED))
            used = used or _parse_time(meta.get("creationTimestamp")) or now
            job = (meta.get("labels") or {}).get(JOB_LABEL, "none")
            idle = (now - used).total_seconds() > idle_ttl
            if job != "none":
                if running_jobs is None:
                    idle = False
                else:  # a grace minute: a pod is labelled before its job's start is stored
                    idle = job not in running_jobs and (now - used).total_seconds() > 60
            if phase in FINISHED or idle:
                try:
                    self.delete(meta["name"], meta["name"])
                except BrowserUnavailable as exc:
                    log.warning("browser pod sweep: %s", exc)  # the next sweep tries again
                else:
                    swept.append(meta["name"])
        return swept

    def _as_dict(self, obj: Any) -> dict[str, Any]:
        # The client's models (whichever generation) to the API's own JSON field names.
        data = obj if isinstance(obj, dict) else self.api_client.sanitize_for_serialization(obj)
        return data if isinstance(data, dict) else {}

    # Last in the class: below it, ``list`` would name this method.
    def list(self) -> list[dict[str, Any]]:
        """What is running: one dict per managed pod."""
        listed = []
        for pod in self.pods():
            meta, status = pod.get("metadata", {}), pod.get("status") or {}
            labels = meta.get("labels") or {}
            listed.append(
                {
                    "name": meta.get("name"),
                    "session": labels.get(SESSION_LABEL),
                    "job": labels.get(JOB_LABEL),
                    "phase": status.get("phase"),
                    "ready": _ready(status),
                    "created": meta.get("creationTimestamp"),
                    "last_used": (meta.get("annotations") or {}).get(LAST_USED),
                }
            )
        return listed


class KubernetesProvider:
    """A pod per session: create, wait until Ready, connect; delete it when the job ends."""

    name = "kubernetes"

    def __init__(
        self, pods: BrowserPods, *, ready_timeout: float, idle_ttl: float, owns_client: bool = False
    ) -> None:
        self.pods = pods
        self.ready_timeout = ready_timeout
        self.idle_ttl = idle_ttl
        self._owns_client = owns_client
        self._sessions: dict[str, BrowserSession] = {}

    @classmethod
    def from_settings(cls, settings: BrowserSettings) -> KubernetesProvider:
        """In-cluster credentials when running in a pod, else the kubeconfig (``KUBECONFIG``)."""
        try:
            from kubernetes import client, config
        except ImportError:
            raise ConfigurationError(
                "BROWSER_PROVIDER=kubernetes needs the kubernetes package: "
                "pip install 'botyard[kubernetes]'"
            ) from None
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            try:
                # KUBECONFIG read now: the client reads it once, when first imported.
                config.load_kube_config(
                    config_file=os.environ.get("KUBECONFIG") or None,
                    client_configuration=configuration,
                    persist_config=False,
                )
            except (config.ConfigException, OSError) as exc:
                raise ConfigurationError(
                    f"BROWSER_PROVIDER=kubernetes: no in-cluster config and no kubeconfig: {exc}"
                ) from None
        pods = BrowserPods(client.ApiClient(configuration), settings)
        timeout, ttl = settings.k8s_ready_timeout, settings.idle_ttl
        return cls(pods, ready_timeout=timeout, idle_ttl=ttl, owns_client=True)

    def provision(self, job_id: int | None, kind: Kind) -> BrowserSession:
        if kind == "selenium" and self.pods.settings.k8s_pod_template is None:
            raise BrowserUnavailable(
                "the default browser pod runs a Playwright server; selenium jobs need a "
                "BROWSER_K8S_POD_TEMPLATE running a Selenium server on BROWSER_K8S_PORT"
            )
        started = time.perf_counter()
        session_id = new_session_id()
        pod, service = self.pods.create(session_id, job_id)
        self.pods.wait_ready(pod, self.ready_timeout)  # deletes the pod if it never gets ready
        endpoint = self.pods.endpoint(service, kind)
        try:
            session = attach(
                endpoint, kind, provider=self.name, job_id=job_id, session_id=session_id
            )
        except BaseException:
            self.pods.delete_quietly(pod)
            raise
        session.ready_seconds = time.perf_counter() - started
        session.details.update(pod=pod, service=service, namespace=self.pods.namespace)
        self._sessions[session.id] = session
        return session

    def terminate(self, session: BrowserSession) -> None:
        self._sessions.pop(session.id, None)
        detach(session)
        if pod := session.details.get("pod"):
            self.pods.delete_quietly(pod)

    def cleanup_idle(self) -> int:
        """Sweep idle and finished pods, across workers; this worker's own are marked used first."""
        for session in list(self._sessions.values()):
            with contextlib.suppress(BrowserUnavailable):
                self.pods.touch(session.details["pod"])
        return len(self.pods.sweep(self.idle_ttl))

    def active(self) -> list[BrowserSession]:
        return list(self._sessions.values())

    def close(self) -> None:
        for session in list(self._sessions.values()):
            self.terminate(session)
        if self._owns_client:
            with contextlib.suppress(Exception):
                self.pods.api_client.close()
