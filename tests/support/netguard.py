"""The address policy of tests that run real servers on 127.0.0.1: public addresses plus IPv4 loopback,
built with the same `allowed_networks` a deployment sets for an internal network."""

from __future__ import annotations

import ipaddress

from ticketflow.runtime.netguard import AddressPolicy

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
LOOPBACK_ALLOWED = AddressPolicy(allowed_networks=LOOPBACK)
