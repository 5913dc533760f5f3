"""Workers: the pull daemon (claims from the store); agent and standby modes come beside it."""

from botyard.worker.daemon import PullWorker, WorkerConfig

__all__ = ["PullWorker", "WorkerConfig"]
