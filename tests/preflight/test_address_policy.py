"""The SSRF guard and the production configuration's inability to widen it."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.netguard import LOOPBACK_ALLOWED, StaticResolver

from ticketflow.preflight.adapters.checks import (
    PUBLIC_ONLY,
    AddressPolicy,
    ChecksConfig,
    ConfigError,
    PortalTarget,
    check_portal_uncached,
    load_checks_config,
)
from ticketflow.preflight.adapters.checks.guarded_http import FetchFailure, parse_https_url
from ticketflow.preflight.adapters.checks.policy import forbidden_reason
from ticketflow.runtime.netguard import parse_networks


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: Python 3.11 alone would call it global-ish
        ("::ffff:10.0.0.1", "private"),
        ("0.0.0.0", "unspecified"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link_local"),  # cloud metadata endpoint
        ("fe80::1", "link_local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),  # reserved space; Python lists it as private first
        ("100.64.0.1", "not_global"),  # carrier-grade NAT
        ("192.0.2.1", "private"),  # documentation range
    ],
)
def test_internal_addresses_are_refused_with_a_reason(address: str, reason: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "87.250.250.242", "2a00:1450:4010:c05::64"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert PUBLIC_ONLY.refusal(ipaddress.ip_address(address)) is None


# The IANA special-purpose address registries (RFC 6890 and updates), written out here, independent of
# Python's `ipaddress` flags (3.11's miss 6to4, NAT64, Teredo and site-local). An address is public when
# it is in none of these blocks and, for IPv6, in the global unicast space 2000::/3; an IPv6 address that
# maps, tunnels or translates to an IPv4 address (::ffff:0:0/96, 2002::/16, 64:ff9b::/96) is as public
# as that IPv4 address.
NOT_PUBLIC_V4 = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
)]  # fmt: skip
NOT_PUBLIC_V6 = [ipaddress.ip_network(n) for n in (
    "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "2001:10::/28", "2001:20::/28", "3fff::/20",
    "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)]  # fmt: skip
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


def public_by_the_registry(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv4Address):
        return not any(address in net for net in NOT_PUBLIC_V4)
    value = int(address)
    if address in ipaddress.ip_network("::ffff:0:0/96"):
        return public_by_the_registry(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return public_by_the_registry(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address in ipaddress.ip_network("2002::/16"):
        return public_by_the_registry(ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF))
    return address in GLOBAL_UNICAST_V6 and not any(address in net for net in NOT_PUBLIC_V6)


def _inside(network: str) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    net = ipaddress.ip_network(network)
    return st.integers(0, net.num_addresses - 1).map(lambda i: net[i])


# Random addresses, and addresses inside the blocks that embed an IPv4 address or border the rules.
ADDRESSES = st.one_of(
    st.ip_addresses(),
    *(_inside(n) for n in ("2002::/16", "64:ff9b::/96", "::ffff:0:0/96", "2001::/32", "fec0::/10",
                           "64:ff9b:1::/48", "2000::/3", "100.64.0.0/10", "192.0.0.0/23")),
)  # fmt: skip


@given(ADDRESSES)
@settings(max_examples=2000)
def test_the_production_policy_allows_exactly_what_the_registry_calls_public(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    assert (PUBLIC_ONLY.refusal(address) is None) == public_by_the_registry(address), address


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("2002:c0a8:0101::1", "embeds 192.168.1.1 (private)"),  # 6to4 of a private address
        ("2002:7f00:0001::1", "embeds 127.0.0.1 (loopback)"),
        ("64:ff9b::169.254.169.254", "embeds 169.254.169.254 (link_local)"),  # NAT64 to cloud metadata
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"),
        ("fec0::1", "site_local"),
        ("64:ff9b:1::a00:1", "nat64_local"),
    ],
)
def test_ipv6_that_reaches_an_internal_ipv4_address_is_refused(address: str, reason: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


def test_an_allowed_network_adds_exactly_that_network_and_nothing_else() -> None:
    policy = LOOPBACK_ALLOWED
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    for other in ["10.0.0.1", "192.168.0.1", "169.254.169.254", "0.0.0.0", "fd00::1"]:
        assert policy.refusal(ipaddress.ip_address(other)) is not None


def test_the_default_configuration_is_public_only() -> None:
    assert ChecksConfig().address_policy == PUBLIC_ONLY
    assert load_checks_config({}).address_policy == PUBLIC_ONLY


@pytest.mark.parametrize(
    "key",
    ["allow_loopback", "address_policy", "extra_trusted_ca_pem", "allowed_networks", "ALLOW_LOOPBACK"],
)
def test_production_configuration_cannot_widen_the_address_policy(key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_checks_config({key: True})


def test_production_configuration_loads_the_settings_it_owns() -> None:
    config = load_checks_config(
        {"timeout_s": 3, "max_redirects": 2, "stable_versions": {"main": "25.100.300"}, "pub_path": "/pub/"}
    )
    assert (config.timeout_s, config.max_redirects, dict(config.stable_versions)) == (
        3.0,
        2,
        {"main": "25.100.300"},
    )
    with pytest.raises(ConfigError):
        load_checks_config({"timeout_s": "fast"})
    with pytest.raises(ConfigError):
        load_checks_config({"max_body_bytes": 10})


def test_allowed_networks_are_parsed_from_a_setting_and_a_bad_one_is_refused() -> None:
    assert parse_networks(" 10.20.0.0/16, 127.0.0.0/8 ,") == (
        ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("127.0.0.0/8"),
    )  # fmt: skip
    assert AddressPolicy(parse_networks("10.20.0.0/16")).refusal(ipaddress.ip_address("10.20.3.4")) is None
    assert AddressPolicy(parse_networks("10.20.0.0/16")).refusal(ipaddress.ip_address("10.21.3.4")) == "private"
    with pytest.raises(ValueError):
        parse_networks("10.20.0.0/33")


@given(st.text(max_size=80))
def test_url_parsing_only_ever_fails_with_a_reason(text: str) -> None:
    try:
        parsed = parse_https_url(text)
    except FetchFailure as failure:
        assert failure.reason in {"malformed_url", "not_https"}
    else:
        assert parsed.host and 0 < parsed.port < 65536 and parsed.target.startswith("/")


# Letters and URL punctuation only, no digits or colons in any script: no IP literal can be generated
# (IDNA would fold fullwidth digits into ASCII), so nothing outside this machine is ever contacted.
_NO_IP_ALPHABET = "abcxyzабвгдеёжя.-_/?#[]@% \t\\"


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=_NO_IP_ALPHABET, max_size=60).map(lambda s: "https://" + s))
def test_any_portal_address_gives_a_full_report_not_an_exception(url: str) -> None:
    resolver = StaticResolver({})
    report = asyncio.run(check_portal_uncached(PortalTarget(url=url), ChecksConfig(timeout_s=0.5), resolver))
    assert len(report.results) == 7
    assert report.results[0].reason in {"malformed_url", "not_resolved"}


def test_the_desk_file_names_the_ports_portal_checks_may_use_443_and_80_by_default() -> None:
    from ticketflow.deskconfig import load_desks
    from ticketflow.preflight.adapters.checks import checks_config_for

    assert checks_config_for(load_desks().desk("bitrix24-box"), {}).allowed_ports == frozenset({443, 80})
    assert load_checks_config({"allowed_ports": [8443]}).allowed_ports == frozenset({8443})
    for bad in ([], [0], [70000], ["443"], [True], 443):
        with pytest.raises(ConfigError, match="allowed_ports"):
            load_checks_config({"allowed_ports": bad})
