"""A worker container's network faults, made in its own network namespace
with the host's tools (iptables, ss through nsenter): the rules are the
container's, not the host's, and go with it. Root on the engine's host."""

from __future__ import annotations

import subprocess
import time

from docker.models.containers import Container

from rig.backends.base import Exit

NSENTER_S = 10  # one iptables or ss call


def cut(container: Container, peer_ip: str, cut: bool) -> Exit | None:
    """Drop the container's packets to and from peer_ip (cut=False: stop
    dropping), inside its network namespace (its own iptables, not the host's)."""
    rule = "-I" if cut else "-D"
    for chain, direction in (("OUTPUT", "-d"), ("INPUT", "-s")):
        done = _in_namespace(container, "iptables", rule, chain, direction, peer_ip, "-j", "DROP")
        if done.returncode != 0:
            return None
    return Exit(
        time.time(),
        f"iptables in its namespace: {peer_ip} " + ("dropped" if cut else "reachable again"),
    )


def refuse(container: Container, peer_ip: str, refuse: bool) -> bool:
    """Refuse the container's new TCP connections to peer_ip (its SYN answered
    with a reset, so connect() fails at once), or accept them again."""
    rule = ["-I" if refuse else "-D", "OUTPUT", "-d", peer_ip, "-p", "tcp", "--syn"]
    done = _in_namespace(container, "iptables", *rule, "-j", "REJECT", "--reject-with", "tcp-reset")
    return done.returncode == 0


def reset(container: Container, peer_ip: str) -> set[str] | None:
    """Tear down the container's TCP connections to peer_ip now (`ss -K`: its
    side gets ECONNABORTED, the peer a reset); their local addresses, or None
    if the kernel would not."""
    done = _in_namespace(container, "ss", "-K", "-Htn", "dst", peer_ip)
    return _local_addresses(done.stdout) if done.returncode == 0 else None


def _in_namespace(container: Container, *command: str) -> subprocess.CompletedProcess[str]:
    """Run a host tool in the container's network namespace."""
    container.reload()
    namespace = ["nsenter", "-t", str(container.attrs["State"]["Pid"]), "-n"]
    return subprocess.run(
        [*namespace, *command], capture_output=True, text=True, timeout=NSENTER_S, check=False
    )


def _local_addresses(ss_output: str) -> set[str]:
    """The local ip:port of each connection `ss -Htn` lists; its columns end with
    Local-Address:Port Peer-Address:Port."""
    return {line.split()[-2] for line in ss_output.splitlines() if len(line.split()) >= 4}
