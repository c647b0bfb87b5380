"""The harness makes a real multi-node swarm on this machine and removes it all."""

import os

import pytest
from swarm_harness import Swarm, available


def test_three_nodes_ready_with_their_own_names(swarm):
    states = swarm.node_states()
    assert states == {f"node{i}": ("ready", "active") for i in (1, 2, 3)}
    info = [n.client.info() for n in swarm.nodes]
    assert [i["Name"] for i in info] == ["node1", "node2", "node3"]
    assert [i["Swarm"]["ControlAvailable"] for i in info] == [True, False, False]
    assert len({i["Swarm"]["NodeID"] for i in info}) == 3


def test_the_main_daemon_stays_out_of_it(swarm, docker_client):
    assert docker_client.info()["Swarm"]["LocalNodeState"] == "inactive"


def test_a_second_swarm_comes_and_goes_leaving_nothing():
    if available():
        pytest.skip(available())
    with Swarm(size=2) as s:
        assert len(s.node_states()) == 2
        pids = [n.proc.pid for n in s.nodes]
        base = s.base
    assert s.leftovers() == []
    assert not os.path.exists(base)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
