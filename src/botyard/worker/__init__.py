"""Workers: the pull daemon (claims from the store); agent and standby modes come beside it."""

from botyard.worker.config import WorkerConfig
from botyard.worker.daemon import PullWorker

__all__ = ["PullWorker", "WorkerConfig"]
