"""Configuration and credentials from the environment and mounted Secrets and ConfigMaps."""

from botyard.credentials.sources import EnvironmentSource, FolderSource, Source
from botyard.credentials.store import Credentials, MissingSecret, ProviderCredentials, prefix_of

__all__ = [
    "Credentials",
    "EnvironmentSource",
    "FolderSource",
    "MissingSecret",
    "ProviderCredentials",
    "Source",
    "prefix_of",
]
