"""The ``kubernetes`` browser provider against a local mock of the Kubernetes API, over real HTTP.

The mock keeps pods and services in dicts, answers the REST paths of the core/v1 API and streams
watch events (chunked, newline-delimited JSON) in which its "kubelet" moves a new pod along:
Pending, then Running and Ready — or stuck, or Failed, as a test asks. No cluster is involved.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from kubernetes import client
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from botyard.browsers.base import BrowserSession
from botyard.browsers.kubernetes import JOB_LABEL, LAST_USED, BrowserPods, KubernetesProvider
from botyard.errors import BrowserUnavailable, ConfigurationError
from botyard.settings import BrowserSettings

DEPLOY = Path(__file__).parents[2] / "deploy" / "kubernetes"
NS = "browsers"
ROUTE = re.compile(r"/api/v1/namespaces/([^/]+)/(pods|services)(?:/([^/]+))?(/log)?")


def _stamp(ago: float = 0.0) -> str:
    return (datetime.now(UTC) - timedelta(seconds=ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
    body |= {"message": message, "reason": reason, "code": code}
    return Response(json.dumps(body), status=code, mimetype="application/json")


class FakeKubernetes:
    """Pods and services of the core/v1 API in dicts; ``outcome`` is what happens to new pods."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            "pods": {},
            "services": {},
        }
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.outcome = "ready"  # ready | pending | failed | stuck
        self.forbidden: set[tuple[str, str]] = set()  # (method, resource) answered 403
        self.closing = threading.Event()
        self.version = 0
        self.url = ""

    @property
    def pods(self) -> dict[tuple[str, str], dict[str, Any]]:
        return self.objects["pods"]

    @property
    def services(self) -> dict[tuple[str, str], dict[str, Any]]:
        return self.objects["services"]

    def add_pod(self, name: str, labels: dict[str, str], *, ns: str = NS, **fields: Any) -> None:
        meta = {"name": name, "namespace": ns, "labels": labels, "uid": f"uid-{name}"}
        meta |= {"creationTimestamp": fields.pop("created", _stamp())}
        if "last_used" in fields:
            meta["annotations"] = {LAST_USED: fields.pop("last_used")}
        status = {"phase": fields.pop("phase", "Running")}
        self.pods[ns, name] = {"apiVersion": "v1", "kind": "Pod", "metadata": meta} | {
            "spec": {"containers": [{"name": "browser", "image": "browser"}]},
            "status": status,
        }

    def handle(self, request: Request) -> Response:
        raw = request.get_data()
        body = json.loads(raw) if raw else None
        self.requests.append((request.method, request.path, dict(request.args), body))
        route = ROUTE.fullmatch(request.path)
        if route is None:
            return _status(404, "NotFound", f"no route {request.path}")
        ns, resource, name, log = route.groups()
        if (request.method, resource) in self.forbidden:
            return _status(403, "Forbidden", f"{resource} is forbidden")
        store = self.objects[resource]
        if name is None:
            if request.method == "POST":
                return self._create(ns, resource, body)
            if request.args.get("watch") == "true":
                return self._watch(ns, request.args)
            return self._list(ns, resource, request.args.get("labelSelector", ""))
        found = store.get((ns, name))
        if found is None:
            return _status(404, "NotFound", f'{resource} "{name}" not found')
        if log:
            if found["status"]["phase"] == "Pending":
                return _status(400, "BadRequest", "container browser is waiting to start")
            return Response("Listening on ws://0.0.0.0:3000/\nboom: browser crashed\n")
        if request.method == "DELETE":
            del store[ns, name]
        elif request.method == "PATCH":
            annotations = body["metadata"]["annotations"]
            found["metadata"].setdefault("annotations", {}).update(annotations)
        return Response(json.dumps(found), mimetype="application/json")

    def _create(self, ns: str, resource: str, body: dict[str, Any]) -> Response:
        name = body["metadata"]["name"]
        if (ns, name) in self.objects[resource]:
            return _status(409, "AlreadyExists", f'{resource} "{name}" already exists')
        self.version += 1
        created = json.loads(json.dumps(body))
        created["metadata"] |= {"uid": f"uid-{name}", "resourceVersion": str(self.version)}
        created["metadata"] |= {"namespace": ns, "creationTimestamp": _stamp()}
        if resource == "pods":
            created["status"] = {"phase": "Pending"}
        self.objects[resource][ns, name] = created
        return Response(json.dumps(created), status=201, mimetype="application/json")

    def _list(self, ns: str, resource: str, selector: str) -> Response:
        wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
        items = [
            obj
            for (where, _), obj in self.objects[resource].items()
            if where == ns
            and all(obj["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        kind = "PodList" if resource == "pods" else "ServiceList"
        listed = {"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}}
        return Response(json.dumps(listed | {"items": items}), mimetype="application/json")

    def _kubelet(self, pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The statuses the pod goes through after Pending."""
        started = {"name": "browser", "ready": False, "restartCount": 0, "image": "browser"}
        started |= {"imageID": "", "state": {"running": {}}}
        if self.outcome == "ready":
            yield {"phase": "Running", "containerStatuses": [started]}
            yield {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": _stamp()},
                ],
                "containerStatuses": [started | {"ready": True}],
            }
        elif self.outcome == "failed":
            yield {"phase": "Failed", "reason": "Error", "message": "browser exited with 1"}
        elif self.outcome == "stuck":
            waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling "nope"'}
            yield {
                "phase": "Pending",
                "containerStatuses": [started | {"state": {"waiting": waiting}}],
            }

    def _watch(self, ns: str, args: Any) -> Response:
        name = args.get("fieldSelector", "").removeprefix("metadata.name=")
        timeout = float(args.get("timeoutSeconds", "30"))

        def events() -> Iterator[str]:
            pod = self.pods.get((ns, name))
            if pod is not None:
                yield json.dumps({"type": "ADDED", "object": pod}) + "\n"
                for status in self._kubelet(pod):
                    time.sleep(0.05)
                    self.version += 1
                    pod["status"] = status
                    pod["metadata"]["resourceVersion"] = str(self.version)
                    yield json.dumps({"type": "MODIFIED", "object": pod}) + "\n"
            self.closing.wait(timeout)  # a real API server holds the watch open until its timeout

        return Response(events(), mimetype="application/json")


@pytest.fixture(scope="module")
def http_server() -> Iterator[HTTPServer]:
    # Threaded: watches stay open while other requests are answered, and answers are chunked.
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def kube(http_server: HTTPServer) -> Iterator[FakeKubernetes]:
    fake = FakeKubernetes()
    http_server.expect_request(re.compile(r"^/api/v1/")).respond_with_handler(fake.handle)
    fake.url = http_server.url_for("/").rstrip("/")
    yield fake
    fake.closing.set()
    try:
        http_server.check_handler_errors()
    finally:
        http_server.clear()


@pytest.fixture
def api(kube: FakeKubernetes) -> Iterator[Any]:
    configuration = client.Configuration()
    configuration.host = kube.url
    api_client = client.ApiClient(configuration)
    yield api_client
    api_client.close()


def settings(**values: Any) -> BrowserSettings:
    return BrowserSettings(BROWSER_K8S_NAMESPACE=NS, BROWSER_IDLE_TTL=600, **values)


@pytest.fixture
def pods(api: Any) -> BrowserPods:
    return BrowserPods(api, settings())


def _sent(kube: FakeKubernetes, method: str, resource: str) -> list[Any]:
    return [
        body
        for verb, path, _, body in kube.requests
        if verb == method and path == f"/api/v1/namespaces/{NS}/{resource}"
    ]


def test_create_sends_a_labelled_limited_pod_and_a_service_selecting_it(
    kube: FakeKubernetes, pods: BrowserPods
) -> None:
    assert pods.create("abc123", 42) == ("botyard-browser-abc123", "botyard-browser-abc123")

    [pod] = _sent(kube, "POST", "pods")
    labels = {"app.kubernetes.io/managed-by": "botyard", "botyard.io/session": "abc123"}
    assert pod["metadata"]["labels"] == labels | {"botyard.io/job": "42"}
    used = datetime.fromisoformat(pod["metadata"]["annotations"][LAST_USED])
    assert abs((datetime.now(UTC) - used).total_seconds()) < 60
    spec = pod["spec"]
    assert spec["activeDeadlineSeconds"] == 3600
    assert spec["restartPolicy"] == "Never"
    [browser] = spec["containers"]
    version = metadata.version("playwright")  # the server must match the installed client
    assert browser["image"] == f"mcr.microsoft.com/playwright:v{version}-noble"
    assert browser["command"] == [
        *("npx", "-y", f"playwright@{version}", "run-server", "--port", "3000"),
        *("--host", "0.0.0.0"),
    ]
    limits = {"cpu": "1", "memory": "2Gi"}
    assert browser["resources"] == {"requests": limits, "limits": limits}
    assert browser["readinessProbe"]["tcpSocket"] == {"port": 3000}
    assert browser["ports"] == [{"name": "browser", "containerPort": 3000}]

    [service] = _sent(kube, "POST", "services")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {"botyard.io/session": "abc123"}
    assert service["spec"]["ports"] == [{"name": "browser", "port": 3000, "targetPort": 3000}]
    [owner] = service["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"]} | {
        "uid": "uid-botyard-browser-abc123"
    }
    assert pods.endpoint("botyard-browser-abc123") == (
        f"ws://botyard-browser-abc123.{NS}.svc:3000/"
    )


def test_create_labels_a_job_less_session_none(kube: FakeKubernetes, pods: BrowserPods) -> None:
    pods.create("s1", None)
    assert kube.pods[NS, "botyard-browser-s1"]["metadata"]["labels"]["botyard.io/job"] == "none"


def test_a_refused_service_deletes_the_pod(kube: FakeKubernetes, pods: BrowserPods) -> None:
    kube.forbidden.add(("POST", "services"))
    with pytest.raises(BrowserUnavailable, match=r"cannot create service.*403"):
        pods.create("s1", 1)
    assert kube.pods == {}


def test_wait_ready_follows_the_watch_until_ready(kube: FakeKubernetes, pods: BrowserPods) -> None:
    name, _ = pods.create("s1", 1)
    started = time.monotonic()
    pods.wait_ready(name, timeout=10)
    assert time.monotonic() - started < 5  # the Ready event, not the timeout, ended the wait

    [watch] = [args for _, _, args, _ in kube.requests if args.get("watch") == "true"]
    assert watch["fieldSelector"] == f"metadata.name={name}"
    assert kube.pods[NS, name]["status"]["phase"] == "Running"
    assert pods.list()[0] | {"created": None, "last_used": None} == {
        "name": name,
        "session": "s1",
        "job": "1",
        "phase": "Running",
        "ready": True,
        "created": None,
        "last_used": None,
    }


def test_a_pod_never_ready_times_out_and_is_deleted(
    kube: FakeKubernetes, pods: BrowserPods
) -> None:
    kube.outcome = "pending"
    name, _ = pods.create("s1", 1)
    started = time.monotonic()
    with pytest.raises(BrowserUnavailable, match=r"not ready within 1\.2 s \(Pending\)") as raised:
        pods.wait_ready(name, timeout=1.2)
    assert raised.value.data == {"pod": name}
    assert 1.2 <= time.monotonic() - started < 5
    assert kube.pods == {}
    assert kube.services == {}


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        ("failed", r"ended \(Failed: Error\).*its log ends with: .* \\| boom: browser crashed$"),
        ("stuck", r"cannot start: ImagePullBackOff"),
    ],
)
def test_a_pod_that_cannot_become_ready_fails_fast_and_is_deleted(
    kube: FakeKubernetes, pods: BrowserPods, outcome: str, message: str
) -> None:
    kube.outcome = outcome
    name, _ = pods.create("s1", 1)
    started = time.monotonic()
    with pytest.raises(BrowserUnavailable, match=message):
        pods.wait_ready(name, timeout=30)
    assert time.monotonic() - started < 5
    assert kube.pods == {}
    assert kube.services == {}


def test_delete_removes_both_and_tolerates_them_gone(
    kube: FakeKubernetes, pods: BrowserPods
) -> None:
    name, service = pods.create("s1", 1)
    pods.delete(name, service)
    assert kube.pods == {}
    assert kube.services == {}
    pods.delete(name, service)  # 404s

    kube.forbidden.add(("DELETE", "pods"))
    kube.add_pod("botyard-browser-s2", {})
    with pytest.raises(BrowserUnavailable, match="cannot delete botyard-browser-s2: HTTP 403"):
        pods.delete("botyard-browser-s2", None)


def test_sweep_deletes_only_idle_or_finished_botyard_pods(
    kube: FakeKubernetes, pods: BrowserPods
) -> None:
    ours = {"app.kubernetes.io/managed-by": "botyard"}
    kube.add_pod("fresh", ours, last_used=_stamp(), created=_stamp(7200))
    kube.add_pod("idle", ours, last_used=_stamp(900))
    kube.add_pod("old-unannotated", ours, created=_stamp(900))
    kube.add_pod("young-unannotated", ours, created=_stamp(60))
    kube.add_pod("finished", ours, last_used=_stamp(), phase="Succeeded")
    kube.add_pod("failed", ours, last_used=_stamp(), phase="Failed")
    kube.add_pod("not-ours", {"app": "other"}, created=_stamp(7200), phase="Failed")
    kube.add_pod("other-namespace", ours, ns="elsewhere", created=_stamp(7200))
    kube.services[NS, "idle"] = {"metadata": {"name": "idle"}}

    swept = pods.sweep(idle_ttl=600)

    assert sorted(swept) == ["failed", "finished", "idle", "old-unannotated"]
    assert sorted(name for _, name in kube.pods) == [
        "fresh",
        "not-ours",
        "other-namespace",
        "young-unannotated",
    ]
    assert kube.services == {}
    selectors = [args.get("labelSelector") for verb, _, args, _ in kube.requests if verb == "GET"]
    assert selectors == ["app.kubernetes.io/managed-by=botyard"]


def test_a_running_jobs_pod_survives_sweeps_until_its_job_ends(
    kube: FakeKubernetes, pods: BrowserPods
) -> None:
    """A long job leaves its pod untouched past the idle TTL: no sweep may take it away."""
    ours = {"app.kubernetes.io/managed-by": "botyard"}
    kube.add_pod("long-job", ours | {JOB_LABEL: "7"}, last_used=_stamp(3000))
    kube.add_pod("ended-job", ours | {JOB_LABEL: "8"}, last_used=_stamp(3000))
    kube.add_pod("just-started", ours | {JOB_LABEL: "9"}, last_used=_stamp(5))
    assert pods.sweep(idle_ttl=600) == []  # a worker's sweep: it cannot know which jobs run
    swept = pods.sweep(idle_ttl=600, running_jobs={"7"})  # the orchestrator's, from the store
    assert swept == ["ended-job"]
    assert sorted(name for _, name in kube.pods) == ["just-started", "long-job"]


def test_touch_keeps_a_pod_from_the_sweep(kube: FakeKubernetes, pods: BrowserPods) -> None:
    kube.add_pod("busy", {"app.kubernetes.io/managed-by": "botyard"}, last_used=_stamp(900))
    pods.touch("busy")
    assert pods.sweep(idle_ttl=600) == []
    [patch] = [body for verb, _, _, body in kube.requests if verb == "PATCH"]
    assert list(patch["metadata"]["annotations"]) == [LAST_USED]


def test_the_template_file_is_the_starting_point(
    kube: FakeKubernetes, api: Any, tmp_path: Path
) -> None:
    template = tmp_path / "pod.yaml"
    template.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"generateName": "x-", "labels": {"team": "rpa"}},
                "spec": {
                    "nodeSelector": {"pool": "browsers"},
                    "containers": [
                        {"name": "chrome", "image": "example/browser:2", "args": ["--serve"]},
                        {"name": "sidecar", "image": "example/sidecar:1"},
                    ],
                },
            }
        )
    )
    pods = BrowserPods(api, settings(BROWSER_K8S_POD_TEMPLATE=str(template), BROWSER_K8S_PORT=9000))
    pods.create("s1", 7)

    [pod] = _sent(kube, "POST", "pods")
    assert pod["metadata"]["name"] == "botyard-browser-s1"
    assert "generateName" not in pod["metadata"]
    assert pod["metadata"]["labels"]["team"] == "rpa"
    assert pod["metadata"]["labels"]["botyard.io/session"] == "s1"
    assert pod["spec"]["nodeSelector"] == {"pool": "browsers"}
    assert pod["spec"]["activeDeadlineSeconds"] == 3600
    browser, sidecar = pod["spec"]["containers"]
    assert (browser["image"], browser["args"]) == ("example/browser:2", ["--serve"])
    assert "command" not in browser  # the template's own entry point
    assert browser["readinessProbe"]["tcpSocket"] == {"port": 9000}
    assert sidecar == {"name": "sidecar", "image": "example/sidecar:1"}
    assert pods.endpoint("botyard-browser-s1") == f"ws://botyard-browser-s1.{NS}.svc:9000/"


def test_the_example_template_is_accepted_by_the_client_models(
    kube: FakeKubernetes, api: Any
) -> None:
    template = DEPLOY / "browser-pod-template.yaml"
    pods = BrowserPods(api, settings(BROWSER_K8S_POD_TEMPLATE=str(template)))
    pods.create("s1", 1)
    [pod] = _sent(kube, "POST", "pods")
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["containers"][0]["command"][:3] == ["npx", "-y", "playwright@1.49.0"]


def test_a_template_that_is_not_a_pod_is_a_configuration_error(api: Any, tmp_path: Path) -> None:
    template = tmp_path / "service.yaml"
    template.write_text("apiVersion: v1\nkind: Service\nspec: {ports: []}\n")
    pods = BrowserPods(api, settings(BROWSER_K8S_POD_TEMPLATE=str(template)))
    with pytest.raises(ConfigurationError, match="not a Pod manifest"):
        pods.create("s1", 1)


# -- the provider -------------------------------------------------------------


def _provider(pods: BrowserPods, ready_timeout: float = 10) -> KubernetesProvider:
    return KubernetesProvider(pods, ready_timeout=ready_timeout, idle_ttl=600)


def test_provision_deletes_the_pod_when_attach_fails(
    kube: FakeKubernetes, pods: BrowserPods
) -> None:
    refused = BrowserUnavailable("cannot connect to the browser")
    with (
        mock.patch("botyard.browsers.kubernetes.attach", side_effect=refused) as attach,
        pytest.raises(BrowserUnavailable, match="cannot connect"),
    ):
        _provider(pods).provision(5, "playwright")
    [endpoint, kind] = attach.call_args.args
    assert re.fullmatch(rf"ws://botyard-browser-[0-9a-f]{{16}}\.{NS}\.svc:3000/", endpoint)
    assert kind == "playwright"
    assert kube.pods == {}
    assert kube.services == {}


def test_provision_fails_cleanly_when_the_pod_never_gets_ready(
    kube: FakeKubernetes, pods: BrowserPods
) -> None:
    kube.outcome = "pending"
    provider = _provider(pods, ready_timeout=1)
    with pytest.raises(BrowserUnavailable, match="not ready within"):
        provider.provision(5, "playwright")
    assert kube.pods == {}
    assert provider.active() == []


def test_selenium_needs_a_template(kube: FakeKubernetes, pods: BrowserPods) -> None:
    with pytest.raises(BrowserUnavailable, match="BROWSER_K8S_POD_TEMPLATE"):
        _provider(pods).provision(5, "selenium")
    assert kube.requests == []


def test_terminate_deletes_the_sessions_pod(kube: FakeKubernetes, pods: BrowserPods) -> None:
    pod, service = pods.create("s1", 5)
    session = BrowserSession(id="s1", provider="kubernetes", kind="playwright", job_id=5)
    session.details.update(pod=pod, service=service)
    _provider(pods).terminate(session)
    assert kube.pods == {}
    assert kube.services == {}


def test_cleanup_idle_spares_the_providers_own_sessions(
    kube: FakeKubernetes, pods: BrowserPods
) -> None:
    ours = {"app.kubernetes.io/managed-by": "botyard"}
    kube.add_pod("mine", ours, last_used=_stamp(900))
    kube.add_pod("leaked", ours, last_used=_stamp(900))
    provider = _provider(pods)
    session = BrowserSession(id="s1", provider="kubernetes", kind="playwright", job_id=5)
    session.details.update(pod="mine", service="mine")
    provider._sessions[session.id] = session  # as provision() would have registered it
    assert provider.cleanup_idle() == 1
    assert list(kube.pods) == [(NS, "mine")]


def test_from_settings_reads_the_kubeconfig(
    kube: FakeKubernetes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "mock", "cluster": {"server": kube.url}}],
                "users": [{"name": "worker", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "mock", "context": {"cluster": "mock", "user": "worker"}}],
                "current-context": "mock",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    kube.add_pod("leaked", {"app.kubernetes.io/managed-by": "botyard"}, phase="Failed")

    provider = KubernetesProvider.from_settings(settings())
    try:
        assert provider.name == "kubernetes"
        assert provider.cleanup_idle() == 1
    finally:
        provider.close()
    assert kube.pods == {}


def test_from_settings_without_any_config_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigurationError, match="no kubeconfig"):
        KubernetesProvider.from_settings(settings())


# -- the manifests ------------------------------------------------------------


def _manifests(name: str) -> list[dict[str, Any]]:
    documents = [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]
    for doc in documents:
        assert isinstance(doc, dict)
        assert doc["apiVersion"] in {"v1", "rbac.authorization.k8s.io/v1"}
        assert isinstance(doc["kind"], str)
        assert isinstance(doc["metadata"], dict)
    return documents


def test_the_pod_template_is_a_pod() -> None:
    [pod] = _manifests("browser-pod-template.yaml")
    assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")
    assert pod["spec"]["containers"][0]["image"].startswith("mcr.microsoft.com/playwright:v")


def test_the_rbac_grants_every_call_the_provider_makes(
    kube: FakeKubernetes, pods: BrowserPods
) -> None:
    documents = {doc["kind"]: doc for doc in _manifests("browser-rbac.yaml")}
    assert set(documents) == {"ServiceAccount", "Role", "RoleBinding"}
    account, role, binding = (
        documents["ServiceAccount"],
        documents["Role"],
        documents["RoleBinding"],
    )
    assert account["metadata"]["name"] == "botyard-worker"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "botyard-worker", "namespace": "botyard"}
    ]
    granted = {
        (resource, verb)
        for rule in role["rules"]
        if rule["apiGroups"] == [""]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }

    # Every kind of call, recorded by the mock and mapped to what RBAC checks.
    kube.outcome = "failed"
    name, service = pods.create("s1", 1)
    with pytest.raises(BrowserUnavailable):
        pods.wait_ready(name, timeout=10)  # watch, log, delete
    kube.add_pod("idle", {"app.kubernetes.io/managed-by": "botyard"}, last_used=_stamp(900))
    pods.touch("idle")
    pods.sweep(idle_ttl=0)
    pods.delete(name, service)
    verbs = {"POST": "create", "DELETE": "delete", "PATCH": "patch"}
    used = set()
    for method, path, args, _ in kube.requests:
        route = ROUTE.fullmatch(path)
        assert route is not None
        _, resource, single, log = route.groups()
        if method == "GET":
            verb = "watch" if args.get("watch") == "true" else "get" if single else "list"
        else:
            verb = verbs[method]
        used.add((resource + (log or ""), verb))
    assert used >= {("pods", "watch"), ("pods/log", "get"), ("pods", "patch"), ("pods", "list")}
    assert used <= granted
    assert granted == used | {("pods", "get"), ("services", "get"), ("services", "list")}


def test_the_orchestrator_sweeps_pods_whose_job_no_longer_runs(
    kube: FakeKubernetes, pods: BrowserPods, tmp_path: Path
) -> None:
    from botyard.orchestrator.browsers import BrowserHost
    from botyard.store.records import NewJob
    from botyard.store.sql import open_store

    store = open_store(f"sqlite:///{tmp_path}/botyard.db")
    host = BrowserHost(settings(BROWSER_PROVIDER="kubernetes"), store, owner="test")
    try:
        host._pods = pods
        running, ended = (store.submit(NewJob("accept.quick", {"n": n}))[0].id for n in (1, 2))
        store.claim(
            worker_id="w", queues=["default"], automations=["accept.quick"], limit=1, lease_ttl=60
        )
        assert store.get_job(running).status == "running"
        assert store.get_job(ended).status == "queued"
        ours = {"app.kubernetes.io/managed-by": "botyard"}
        kube.add_pod("runs", ours | {JOB_LABEL: str(running)}, last_used=_stamp(3000))
        kube.add_pod("ended", ours | {JOB_LABEL: str(ended)}, last_used=_stamp(3000))
        assert host.sweep_pods() == ["ended"]
        assert [name for _, name in kube.pods] == ["runs"]
    finally:
        host.close()
        store.close()
