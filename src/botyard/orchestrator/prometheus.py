"""``/metrics`` for Prometheus: a collector that reads the store at every scrape.

Every figure comes from the store, not from counters in this process, so each orchestrator
replica behind a load balancer answers the same. The collector is registered in a registry of
the app's own (never prometheus-client's global one), and ``render`` picks the text format
(0.0.4) or OpenMetrics from the scraper's ``Accept`` header, as prometheus-client does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from botyard.jobs import JobStatus, Outcome
from botyard.orchestrator.health import Level, Snapshot, rollup
from botyard.store.figures import Figures, Histogram
from botyard.totp.ledger import ProviderFigures
from botyard.version import __version__

ATTEMPT_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
DISPATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0)


class StoreCollector(Collector):
    """Jobs, attempts, queues, workers, recoveries and health, from the store."""

    def __init__(
        self,
        figures: Figures,
        snapshot: Callable[[], Snapshot],
        extra: Iterable[Callable[[], Iterable[Metric]]] = (),
    ) -> None:
        self.figures = figures
        self.snapshot = snapshot
        self.extra = list(extra)  # other subsystems' families (browser sessions, TOTP)

    def describe(self) -> list[Metric]:
        return []  # no collect() at registration: the store may not be reachable yet

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("botyard", "Botyard orchestrator")
        info.add_metric([], {"version": __version__})
        yield info
        snap = self.snapshot()
        up = GaugeMetricFamily("botyard_store_up", "1 when the job store answers, else 0")
        up.add_metric([], 1.0 if snap.store_ok else 0.0)
        yield up
        scheduler = GaugeMetricFamily(
            "botyard_scheduler_running", "1 when this replica's maintenance scheduler runs"
        )
        scheduler.add_metric([], 1.0 if snap.scheduler_running else 0.0)
        yield scheduler
        level, _ = rollup(snap)
        health = StateSetMetricFamily(
            "botyard_health", "The health rollup: green, yellow or red", labels=[]
        )
        health.add_metric([], {lv.value: lv is level for lv in Level})
        yield health
        if not snap.store_ok:
            return
        yield from self._jobs()
        yield from self._queues(snap)
        yield from self._workers(snap)
        yield from self._attempts()
        yield from self._maintenance()
        for family in self.extra:
            yield from family()

    def _jobs(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "botyard_jobs", "Jobs by status and automation", labels=["status", "automation"]
        )
        counts = self.figures.jobs_by_status()
        for (status, automation), n in sorted(counts.items()):
            family.add_metric([status, automation], n)
        present = {status for status, _ in counts}
        for status in JobStatus:  # every status appears, so a query never sees a gap
            if status.value not in present:
                family.add_metric([status.value, ""], 0)
        yield family

    def _queues(self, snap: Snapshot) -> Iterator[Metric]:
        depth = GaugeMetricFamily("botyard_queue_depth", "Queued jobs per queue", labels=["queue"])
        for queue, n in sorted(snap.queues.items()):
            depth.add_metric([queue], n)
        yield depth

    def _workers(self, snap: Snapshot) -> Iterator[Metric]:
        workers = GaugeMetricFamily(
            "botyard_workers", "Registered workers by state", labels=["state"]
        )
        workers.add_metric(["online"], snap.workers_online)
        workers.add_metric(["offline"], len(snap.workers) - snap.workers_online)
        yield workers
        online = GaugeMetricFamily("botyard_workers_online", "Workers with a recent heartbeat")
        online.add_metric([], snap.workers_online)
        yield online
        slots = GaugeMetricFamily("botyard_worker_slots", "Job slots of online workers")
        slots.add_metric([], snap.capacity)
        yield slots
        busy = GaugeMetricFamily("botyard_worker_busy_slots", "Slots running a job now")
        busy.add_metric([], snap.active)
        yield busy

    def _attempts(self) -> Iterator[Metric]:
        outcomes = CounterMetricFamily(
            "botyard_attempts",
            "Finished attempts by automation and outcome",
            labels=["automation", "outcome"],
        )
        by_outcome = self.figures.attempts_by_outcome()
        for (automation, outcome), n in sorted(by_outcome.items()):
            outcomes.add_metric([automation, outcome], n)
        yield outcomes
        recovered = CounterMetricFamily(
            "botyard_leases_recovered",
            f"Attempts whose worker stopped renewing the lease ({Outcome.LEASE_EXPIRED.value})",
        )
        expired = Outcome.LEASE_EXPIRED.value
        recovered.add_metric([], sum(n for (_, o), n in by_outcome.items() if o == expired))
        yield recovered
        yield _histogram(
            "botyard_attempt_duration_seconds",
            "How long finished attempts ran",
            ["automation", "outcome"],
            self.figures.attempt_durations(ATTEMPT_BUCKETS),
        )
        yield _histogram(
            "botyard_dispatch_latency_seconds",
            "From a job becoming runnable to its attempt starting on a worker",
            ["queue"],
            self.figures.dispatch_latency(DISPATCH_BUCKETS),
        )

    def _maintenance(self) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "botyard_maintenance_runs",
            "Runs of the maintenance jobs on any replica",
            labels=["job", "outcome"],
        )
        for (job, outcome), n in sorted(self.figures.maintenance_runs().items()):
            runs.add_metric([job, outcome], n)
        yield runs


def _histogram(
    name: str, documentation: str, labels: list[str], found: dict[tuple[str, ...], Histogram]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for key, h in sorted(found.items()):
        edges = [_le(b) for b in h.bounds] + ["+Inf"]
        family.add_metric(list(key), list(zip(edges, h.buckets, strict=True)), h.total)
    return family


def _le(bound: float) -> str:
    return repr(float(bound))


def totp_families(figures: Callable[[], Iterable[ProviderFigures]]) -> Callable[[], list[Metric]]:
    """TOTP codes issued and consumed per provider, from the TOTP ledger."""

    def families() -> list[Metric]:
        issued = CounterMetricFamily(
            "botyard_totp_codes_issued", "TOTP codes handed out to jobs", labels=["provider"]
        )
        consumed = CounterMetricFamily(
            "botyard_totp_codes_consumed",
            "TOTP codes jobs reported back, by whether the portal accepted them",
            labels=["provider", "result"],
        )
        for f in figures():
            issued.add_metric([f.provider], f.issued)
            consumed.add_metric([f.provider, "accepted"], f.succeeded)
            consumed.add_metric([f.provider, "rejected"], f.failed)
        return [issued, consumed]

    return families


def browser_families(figures: Callable[[], dict[str, Any]]) -> Callable[[], list[Metric]]:
    """Browser sessions open now, started (warm or cold), and leaked browsers killed."""

    def families() -> list[Metric]:
        f = figures()
        open_now = GaugeMetricFamily(
            "botyard_browser_sessions", "Browser sessions open now", labels=["provider"]
        )
        for provider, count in sorted(f["open"].items()):
            open_now.add_metric([provider], count)
        started = CounterMetricFamily(
            "botyard_browser_sessions_started",
            "Jobs' browser sessions started, by whether a warm browser served them",
            labels=["provider", "warm"],
        )
        for provider, warm, count in f["started"]:
            started.add_metric([provider, str(warm).lower()], count)
        leaked = CounterMetricFamily(
            "botyard_browser_leaks",
            "Browser processes found running without their owner, killed by the sweeper",
        )
        leaked.add_metric([], f["leaked"])
        return [open_now, started, leaked]

    return families


def registry_for(collector: StoreCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def wants_prometheus(accept: str) -> bool:
    """A scraper's ``Accept`` (OpenMetrics or ``text/plain``, no JSON), not curl's ``*/*``."""
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return "application/json" not in types and bool(
        types & {"application/openmetrics-text", "text/plain"}
    )


def render(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """The exposition for ``accept`` and its content type."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
