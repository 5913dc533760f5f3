"""The portal's fibre circuits: seeded as pending, then validated or cancelled once."""

from __future__ import annotations

import secrets
import threading
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any

_SEED_CUSTOMERS = (
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Katherine Johnson",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Margaret Hamilton",
    "Claude Shannon",
    "Frances Allen",
    "John McCarthy",
    "Radia Perlman",
)


@dataclass(frozen=True)
class Circuit:
    number: str
    customer: str
    address: str
    status: str = "pending"
    reference: str | None = None
    cancel_reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Outcome(Enum):
    """What a validation or a cancellation did."""

    DONE = "done"
    ALREADY = "already"
    REFUSED = "refused"


def seed_circuits() -> list[Circuit]:
    """FTTH-1001 to FTTH-1012, all pending."""
    return [
        Circuit(f"FTTH-{1001 + i}", customer, f"{12 + 7 * i} Fibre Street, Demo City")
        for i, customer in enumerate(_SEED_CUSTOMERS)
    ]


def normalize(number: str) -> str:
    return number.strip().upper()


class CircuitBook:
    """The circuits by number, changed under a lock since requests run on several threads."""

    def __init__(self, circuits: list[Circuit]) -> None:
        self._lock = threading.Lock()
        self._circuits = {circuit.number: circuit for circuit in circuits}

    def get(self, number: str) -> Circuit | None:
        with self._lock:
            return self._circuits.get(normalize(number))

    def all(self) -> list[Circuit]:
        with self._lock:
            return list(self._circuits.values())

    def validate(self, number: str) -> tuple[Outcome, Circuit] | None:
        """Pending → validated with a VAL- reference; a second validation changes nothing."""
        with self._lock:
            circuit = self._circuits.get(normalize(number))
            if circuit is None:
                return None
            if circuit.status == "validated":
                return Outcome.ALREADY, circuit
            if circuit.status != "pending":
                return Outcome.REFUSED, circuit
            circuit = replace(circuit, status="validated", reference=_reference("VAL"))
            self._circuits[circuit.number] = circuit
            return Outcome.DONE, circuit

    def cancel(self, number: str, reason: str) -> tuple[Outcome, Circuit] | None:
        """Pending or validated → cancelled, with a CAN- reference; cancelling twice is a no-op."""
        with self._lock:
            circuit = self._circuits.get(normalize(number))
            if circuit is None:
                return None
            if circuit.status == "cancelled":
                return Outcome.ALREADY, circuit
            circuit = replace(
                circuit, status="cancelled", reference=_reference("CAN"), cancel_reason=reason
            )
            self._circuits[circuit.number] = circuit
            return Outcome.DONE, circuit


def _reference(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3).upper()}"
