"""``AUTHORIZED_WORKER_IPS``: IPs and CIDRs, IPv4 and IPv6; loopback only in development mode."""

from __future__ import annotations

import pytest

from botyard.errors import ConfigurationError
from botyard.settings import AgentSettings
from botyard.worker.agent_app import check_agent_settings, is_authorised, parse_networks

NETWORKS = parse_networks(["192.168.1.100", "10.0.0.0/8", "2001:db8::/32", "fe80::1"])


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("192.168.1.100", True),
        ("192.168.1.101", False),
        ("10.255.0.3", True),
        ("11.0.0.1", False),
        ("2001:db8:1::7", True),
        ("2001:db9::1", False),
        ("fe80::1%eth0", True),  # a zone index is not part of the address
        ("::ffff:10.1.2.3", True),  # IPv4 through an IPv6 socket
        ("127.0.0.1", False),
        ("::1", False),
        ("testclient", False),
        (None, False),
    ],
)
def test_addresses_against_the_list(host: str | None, allowed: bool) -> None:
    assert is_authorised(host, NETWORKS, development=False) is allowed


def test_loopback_passes_only_in_development_mode() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1"):
        assert is_authorised(host, [], development=True)
        assert not is_authorised(host, [], development=False)
    assert not is_authorised("10.0.0.1", [], development=True)


def test_the_list_is_read_as_json_or_comma_separated() -> None:
    as_json = AgentSettings(AUTHORIZED_WORKER_IPS='["192.168.1.100", "10.0.0.0/8"]')  # type: ignore[call-arg]
    as_csv = AgentSettings(AUTHORIZED_WORKER_IPS="192.168.1.100, 10.0.0.0/8")  # type: ignore[call-arg]
    assert as_json.authorized_ips == as_csv.authorized_ips == ["192.168.1.100", "10.0.0.0/8"]


def test_an_agent_nobody_could_call_safely_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="AUTHORIZED_WORKER_IPS is empty"):
        check_agent_settings(AgentSettings(BOTYARD_WORKER_TOKEN="t"), development=False)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="BOTYARD_WORKER_TOKEN"):
        check_agent_settings(
            AgentSettings(AUTHORIZED_WORKER_IPS="10.0.0.1"),  # type: ignore[call-arg]
            development=False,
        )
    with pytest.raises(ConfigurationError, match="not an IP or CIDR"):
        check_agent_settings(AgentSettings(AUTHORIZED_WORKER_IPS="10.0.0.300"), development=True)  # type: ignore[call-arg]
    check_agent_settings(AgentSettings(), development=True)  # development: loopback, no token
