"""Session fixtures that build the dream image through the real daemon (no fakes).

conftest.py imports `dream_image`; test modules must not import it again (that would
build once per module).

`dream_image` builds the repository's Dockerfile with WEIGHTS=untrained (no download)
once per session and yields its tag. It carries io.ddctl.test=<session>; it is the one
image of the session kept after it (dockertest.remove_session_leftovers), so that later runs
reuse its layer cache. Helpers here are shared with test_image.py.
"""

import io
import os
import tarfile

import docker
import pytest
from dockertest import TEST_LABEL

from ddctl.containers import run_to_completion

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_TAG = os.environ.get("DDCTL_TEST_IMAGE") or "ddctl/deepdream:test"
BUILD_TIMEOUT = 1500  # seconds: a cold build (apt) takes 1-2 minutes here


def api_client(docker_client=None):
    """The low-level API client (docker.APIClient) of a DockerClient, or one from the env."""
    api = getattr(docker_client, "api", None)
    if api is not None:
        return api
    return docker.APIClient(**docker.utils.kwargs_from_env(), timeout=BUILD_TIMEOUT)


def build_image(api, tag, buildargs, path=REPO):
    """Build `path` with host networking; return (image id or None, log text, error or None)."""
    log, error, image_id = [], None, None
    for chunk in api.build(
        path=path,
        tag=tag,
        buildargs=buildargs,
        network_mode="host",
        decode=True,
        rm=True,
        forcerm=True,
        labels=dict(TEST_LABEL),
        timeout=BUILD_TIMEOUT,
    ):
        if "stream" in chunk:
            log.append(chunk["stream"])
        if "error" in chunk:
            error = chunk["error"]
            log.append(error)
        aux = chunk.get("aux") or {}
        if "ID" in aux:
            image_id = aux["ID"]
    text = "".join(log)
    if error is None and image_id is None:
        for line in reversed(text.splitlines()):
            if line.startswith("Successfully built "):
                image_id = line.split()[-1]
                break
    return (None if error else image_id), text, error


def run_in_image(docker_client, image, command, entrypoint=None, volumes=None, user=None):
    """Run a container to the end with ddctl's own helper; (exit code, stdout, stderr). Always removed."""
    return run_to_completion(
        docker_client,
        image,
        timeout=900,
        command=command,
        entrypoint=entrypoint,
        volumes=volumes or {},
        labels=dict(TEST_LABEL),
        network_disabled=True,
        user=user,
        environment={"PYTHONDONTWRITEBYTECODE": "1"},
    )


def copy_from_image(docker_client, image, path):
    """Bytes of one file inside `image` (through a created, never started container)."""
    container = docker_client.containers.create(image, labels=dict(TEST_LABEL), entrypoint=["true"])
    try:
        stream, _ = container.get_archive(path)
        tar = tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
        member = tar.getmembers()[0]
        return tar.extractfile(member).read()
    finally:
        container.remove(force=True)


@pytest.fixture(scope="session")
def dream_image(docker_client, base_image):
    """Tag of the dream image built from this checkout with untrained weights."""
    api = api_client(docker_client)
    image_id, log, error = build_image(api, IMAGE_TAG, {"WEIGHTS": "untrained"})
    if error:
        pytest.fail("the dream image did not build with WEIGHTS=untrained: %s\n%s" % (error, log[-4000:]))
    return IMAGE_TAG
