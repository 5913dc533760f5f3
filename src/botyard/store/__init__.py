"""The job store: the single source of truth for jobs, attempts and everything they leave behind."""

from botyard.store.records import (
    AttemptRecord,
    ClaimedJob,
    Completion,
    JobFilter,
    JobRecord,
    NewJob,
    WorkerRecord,
)
from botyard.store.sql import SqlStore, open_store

__all__ = [
    "AttemptRecord",
    "ClaimedJob",
    "Completion",
    "JobFilter",
    "JobRecord",
    "NewJob",
    "SqlStore",
    "WorkerRecord",
    "open_store",
]
