"""Connection blips: the pure parts (what `ss` lists, what the report says)."""

from __future__ import annotations

from rig.backends.docker_network import _local_addresses
from rig.faults import blips
from rig.settings import Settings


def test_the_local_address_of_each_connection_ss_lists() -> None:
    # `ss -K -Htn dst IP` lists what it tore down; with a state filter the state
    # column is left out. Either way the local address is the second to last.
    established = "0      0      172.18.0.5:41234   172.18.0.2:6379\n"
    killed = (
        "ESTAB 0 0 172.18.0.5:41236 172.18.0.2:6379 \nESTAB 0 0 172.18.0.5:41238 172.18.0.2:6379\n"
    )
    assert _local_addresses(established) == {"172.18.0.5:41234"}
    assert _local_addresses(killed) == {"172.18.0.5:41236", "172.18.0.5:41238"}
    assert _local_addresses("") == set()


def test_the_report_says_how_many_blips_how_long_and_how_far_apart() -> None:
    settings = Settings(fault="blips", blips=3, blip_seconds=1, blip_gap_seconds=0.5)
    assert blips.describe(settings) == "3 x 1 s, 0.5 s apart"
