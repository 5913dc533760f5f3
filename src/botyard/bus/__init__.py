"""Wake-ups and control events between the API, the store and workers.

A worker must start a newly submitted job within milliseconds, and a cancelled job must stop
at once; polling the store is only the safety net. Backends: ``postgres`` (LISTEN/NOTIFY) and
``local`` (datagram sockets next to the SQLite file, for every process on one machine).
"""

from botyard.bus.base import Bus, Event, Subscription
from botyard.bus.factory import open_bus

__all__ = ["Bus", "Event", "Subscription", "open_bus"]
