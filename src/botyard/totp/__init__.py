"""Central TOTP codes: strictly increasing time steps per account, secrets kept here."""

from botyard.totp.ledger import Ledger, ProviderFigures, SqlLedger
from botyard.totp.manager import (
    TotpCode,
    TotpError,
    TotpManager,
    TotpNotConfigured,
    TotpUnavailable,
    Wait,
)

__all__ = [
    "Ledger",
    "ProviderFigures",
    "SqlLedger",
    "TotpCode",
    "TotpError",
    "TotpManager",
    "TotpNotConfigured",
    "TotpUnavailable",
    "Wait",
]
