"""Fixtures of the swarm tests: one real 3-node swarm per session (swarm_harness.py).

The swarm tests carry the `swarm` mark (`pytest -m swarm` runs only them, `-m "not swarm"`
skips them). They need root; otherwise they are skipped with the reason, except under
CI=true, where that is a failure.
"""

import os

import pytest
from dockertest import TEST_LABEL
from swarm_harness import Swarm, available


def pytest_configure(config):
    config.addinivalue_line("markers", "swarm: needs a real multi-node swarm (the tests make one; root)")


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.swarm)
    # The test that stops a worker's dockerd leaves the session's swarm one node short: last.
    items.sort(key=lambda item: "worker_stopped" in item.name)


def _skip_or_fail(why):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but the swarm tests cannot run: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def swarm(docker_client):
    """A 3-node swarm made for this session and removed at its end, leaving nothing."""
    why = available()
    if why:
        _skip_or_fail(why)
    with Swarm() as s:
        yield s
    assert not s.leftovers(), f"the swarm harness left {s.leftovers()}"


@pytest.fixture(scope="session")
def swarm_with_images(swarm, docker_client, dream_image):
    """The swarm, its manager holding the dream image (as after `ddctl build` there) and every
    node the registry image (ddctl builds it on the manager; the nodes here have no route out,
    so it is built on the main daemon and loaded once per node, the one-time provisioning).
    The dream image reaches the workers through ddctl's registry service, never loaded here."""
    from ddctl.swarm.registry import REGISTRY_IMAGE, ensure_registry_image

    ensure_registry_image(docker_client, lambda text: None, labels=dict(TEST_LABEL))
    swarm.load_image(docker_client, REGISTRY_IMAGE)
    swarm.load_image(docker_client, dream_image, [swarm.manager])
    return swarm
