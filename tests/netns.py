"""Another "host" for a test: a network namespace joined to this one by a veth pair.

:func:`namespace` creates ``pushbench-<pid>-<n>`` and a veth pair, one end left here
(``host_ip``), the other moved into the namespace (``ns_ip``), a /30 of 10.213.0.0/16
that no interface of this host uses yet, and brings up the namespace's loopback (a Locust
master and its worker talk over it). A command runs inside with ``prefix + argv`` (``ip
netns exec NAME``). The namespace and the veth are deleted on exit whatever happened.

Needs root and a kernel with network namespaces: :func:`namespace` calls ``pytest.skip``
with the reason when either is missing. The "host" shares this kernel, so it shares
CLOCK_MONOTONIC too: a test gives it a clock of its own with a time namespace
(``unshare --time --monotonic``) or ``PUSHBENCH_CLOCK_SKEW_NS``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

__all__ = ["NetNs", "namespace"]

_SEQ = itertools.count()
_SUBNET = ipaddress.ip_network("10.213.0.0/16")


@dataclass(frozen=True)
class NetNs:
    name: str
    host_ip: str  # this side of the veth: bind the server here
    ns_ip: str  # the namespace's side

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 of 10.213.0.0/16 overlapping no address of this host (several test processes
    may each hold one: the pid picks where to start looking)."""
    used = []
    for line in _ip("-o", "-4", "addr", "show").stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            used.append(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
    nets = list(_SUBNET.subnets(new_prefix=30))
    start = (os.getpid() * 7 + next(_SEQ)) % len(nets)
    for net in nets[start:] + nets[:start]:
        if not any(net.overlaps(u) for u in used):
            return net  # type: ignore[return-value]
    pytest.skip("no free /30 in 10.213.0.0/16 for a test namespace")


@contextlib.contextmanager
def namespace() -> Iterator[NetNs]:
    """A namespace with a veth pair to this one (see the module doc); skips the test when
    not root or when ``ip netns`` fails."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns add)")
    if shutil.which("ip") is None:
        pytest.skip("the ip command (iproute2) is not installed")
    n = next(_SEQ)
    name = f"pushbench-{os.getpid()}-{n}"
    host_if, ns_if = f"pbh{os.getpid() % 100000}x{n}", f"pbn{os.getpid() % 100000}x{n}"
    net = _free_subnet()
    host_ip, ns_ip = (str(a) for a in list(net.hosts())[:2])
    added = _ip("netns", "add", name)
    if added.returncode != 0:
        pytest.skip(f"ip netns add failed: {added.stderr.strip()}")
    try:
        steps = [
            ("link", "add", host_if, "type", "veth", "peer", "name", ns_if),
            ("link", "set", ns_if, "netns", name),
            ("addr", "add", f"{host_ip}/30", "dev", host_if),
            ("link", "set", host_if, "up"),
            ("-n", name, "addr", "add", f"{ns_ip}/30", "dev", ns_if),
            ("-n", name, "link", "set", ns_if, "up"),
            ("-n", name, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                pytest.skip(f"ip {' '.join(step)} failed: {done.stderr.strip()}")
        yield NetNs(name, host_ip, ns_ip)
    finally:
        _ip("link", "del", host_if)  # takes its peer with it (if it still exists)
        _ip("netns", "del", name)
