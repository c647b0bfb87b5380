"""Integration tests talk to a real Docker daemon, never a fake.

When none answers they are skipped with the reason, except under CI=true, where a
missing daemon fails the run: a green CI that skipped the real tests is not green.
Everything a test creates carries the label io.ddctl.test=<session> (dockertest.py) and is
removed by that label at the end of the session: containers, and the images the session
built, except the dream image it tags (kept for the next run's layer cache). Earlier
builds that a later build re-tagged are removed that way too.
"""

import os
import uuid

import pytest
from dockertest import BASE_IMAGE, TEST_LABEL, TEST_LABEL_FILTER, remove_session_leftovers  # noqa: F401

# The dream image, built once per session with untrained weights (image_fixtures.py).
# Imported here only: a fixture imported into several test modules is built once per module.
from image_fixtures import IMAGE_TAG, dream_image  # noqa: F401

from ddctl.client import DOCKER_ERRORS, explain, make_client
from ddctl.errors import DdctlError


def _connect():
    try:
        client = make_client(timeout=120)
        client.ping()
        return client, None
    except DdctlError as exc:
        return None, exc.message
    except DOCKER_ERRORS as exc:
        return None, explain(exc)


@pytest.fixture(scope="session")
def docker_client():
    client, why = _connect()
    if client is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no Docker daemon answers: {why}")
        pytest.skip(f"no Docker daemon answers: {why}")
    images_before = {i.id for i in client.images.list(all=True)}
    yield client
    remove_session_leftovers(client, keep=IMAGE_TAG, images_before=images_before)
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client):
    try:
        docker_client.images.get(BASE_IMAGE)
    except Exception:
        msg = f"{BASE_IMAGE} is absent: run provision/bootstrap-base-image.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return BASE_IMAGE


@pytest.fixture
def tag():
    """A label value unique to this test, put on every container ddctl creates
    (io.ddctl.testcase=<tag>: dreamcli.env_for)."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def unique_name():
    return "ddctl-test-" + uuid.uuid4().hex[:10]
