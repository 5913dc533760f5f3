"""One error root for Botyard; HTTP status codes are chosen only in the API layer."""

from __future__ import annotations

from typing import Any


class BotyardError(Exception):
    """Something went wrong in Botyard."""

    def __init__(self, message: str | None = None, **data: Any) -> None:
        self.data = data
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigurationError(BotyardError):
    """The configuration is invalid."""


# -- automations -----------------------------------------------------------


class AutomationError(BotyardError):
    """An automation could not be used."""


class UnknownAutomation(AutomationError):
    """No automation is registered under this name."""


class PayloadInvalid(AutomationError):
    """The payload does not match the automation's parameters."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors=errors)
        self.errors = errors


class BusinessError(AutomationError):
    """The automation reached a business outcome that makes the job fail; it is not retried."""


# -- jobs and the store ----------------------------------------------------


class JobError(BotyardError):
    """A job operation was refused."""


class JobNotFound(JobError):
    """No job has this id."""


class InvalidTransition(JobError):
    """The job is not in a status that allows this operation."""


class LeaseLost(JobError):
    """The attempt no longer holds the job: another attempt or a person has taken it over."""


class StoreUnavailable(BotyardError):
    """The store cannot be reached or cannot write just now; try again shortly."""


# -- requests --------------------------------------------------------------


class InvalidInput(BotyardError):
    """The request carries text or JSON that Botyard does not take (see ``errors``)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors=errors)
        self.errors = errors


# -- privacy ---------------------------------------------------------------


class PrivacyError(BotyardError):
    """A data-subject request could not be handled."""


class PrivacyRequestNotFound(PrivacyError):
    """No data-subject request has this reference."""


class PrivacyRequestClosed(PrivacyError):
    """The data-subject request is closed already."""


class SubjectHasActiveJobs(PrivacyError):
    """Queued or running jobs refer to the subject; cancel them or let them finish first."""


# -- standby worker -----------------------------------------------------------


class BrowserError(BotyardError):
    """A browser session could not be provided."""


class BrowserUnavailable(BrowserError):
    """No browser could be started or reached (executable, endpoint, pod)."""


class StandbyError(BotyardError):
    """The standby task server could not take the task."""


class TaskRejected(StandbyError):
    """The task is invalid."""


class UnsafeUrl(TaskRejected):
    """The script URL is not a public https address."""


class TaskBusy(StandbyError):
    """A task is already executing"""


class DownloadFailed(StandbyError):
    """The script could not be downloaded."""


# -- auth ------------------------------------------------------------------


class AuthError(BotyardError):
    """Authentication or authorisation failed."""


class InvalidCredentials(AuthError):
    """Incorrect username or password"""


class InvalidToken(AuthError):
    """Could not validate credentials"""


class PermissionDenied(AuthError):
    """Not enough permissions"""


class RateLimitExceeded(BotyardError):
    """Too many requests; try again later"""

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after
