"""Browser sessions for jobs: the provider interface and its three backends."""

from __future__ import annotations

from botyard.browsers.base import KINDS, BrowserProvider, BrowserSession, Kind
from botyard.settings import BrowserSettings

__all__ = ["KINDS", "BrowserProvider", "BrowserSession", "Kind", "open_provider"]


def open_provider(settings: BrowserSettings) -> BrowserProvider:
    """The provider ``BROWSER_PROVIDER`` names, configured from ``settings``."""
    if settings.provider == "remote":
        from botyard.browsers.remote import RemoteProvider

        return RemoteProvider(settings.remote_url, settings.selenium_url, settings.args)
    if settings.provider == "kubernetes":
        from botyard.browsers.kubernetes import KubernetesProvider

        return KubernetesProvider.from_settings(settings)
    from botyard.browsers.local import LocalProvider

    return LocalProvider(
        executable=settings.executable,
        chromedriver=settings.chromedriver,
        headless=settings.headless,
        warm=settings.warm,
        idle_ttl=settings.idle_ttl,
        args=settings.args,
    )
