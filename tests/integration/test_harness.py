"""The harness itself: ddctl's client reaches a real daemon, and a container from the
base image writes into a bind-mounted host folder that we read back."""

import io
import uuid

from dockertest import TEST_LABEL, remove_session_leftovers

from ddctl.client import make_client, resolve_endpoint


def test_client_reaches_the_real_daemon(docker_client):
    version = docker_client.version()
    assert version["ApiVersion"]
    assert docker_client.ping() is True
    # The same endpoint the CLI would use: no second way of making clients.
    assert make_client().api.base_url == docker_client.api.base_url
    assert resolve_endpoint().host


def test_container_writes_into_a_bind_mounted_folder(docker_client, base_image, tmp_path, unique_name):
    out = tmp_path / "out"
    out.mkdir()
    container = docker_client.containers.run(
        base_image,
        ["sh", "-c", "echo dreamed > /images/hello.txt"],
        name=unique_name,
        labels=TEST_LABEL,
        network_mode="none",
        volumes={str(out): {"bind": "/images", "mode": "rw"}},
        detach=True,
    )
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
    finally:
        container.remove(force=True)
    assert (out / "hello.txt").read_text() == "dreamed\n"
    assert not docker_client.containers.list(all=True, filters={"name": unique_name})


def test_the_session_s_leftovers_are_removed_by_its_label_only(docker_client, base_image):
    """What dockertest.remove_session_leftovers does at the end of every session, on a label of
    this test's own: a re-tagged (now untagged) build and other builds go, the kept tag stays."""
    label = {"io.ddctl.test": f"{TEST_LABEL['io.ddctl.test']}-leftovers-{uuid.uuid4().hex[:8]}"}
    name = "ddctl/leftovers-" + uuid.uuid4().hex[:8]

    def build(tag, n):
        dockerfile = f"FROM {base_image}\nLABEL n={n}\n".encode()
        for _ in docker_client.api.build(fileobj=io.BytesIO(dockerfile), tag=tag, labels=label, rm=True):
            pass
        return docker_client.images.get(tag).id

    before = {i.id for i in docker_client.images.list(all=True)}
    first = build(f"{name}:dream", 1)
    second = build(f"{name}:dream", 2)  # the first one is now untagged: a leftover
    other = build(f"{name}:other", 3)
    unlabelled = docker_client.images.get(base_image).id

    # an untagged dream image without the session's label (as a build's stage): made since, so it goes
    def stage(n):
        text = f"FROM {base_image}\nLABEL io.ddctl.image=deepdream n={n}\n".encode()
        for _ in docker_client.api.build(fileobj=io.BytesIO(text), tag=f"{name}:stage", rm=True):
            pass
        return docker_client.images.get(f"{name}:stage").id

    dangling, tagged_stage = stage(uuid.uuid4().hex), stage(uuid.uuid4().hex)  # the first is now untagged
    assert dangling in {i.id for i in docker_client.images.list(filters={"dangling": True})}
    remove_session_leftovers(
        docker_client, "io.ddctl.test=" + label["io.ddctl.test"], keep=f"{name}:dream", images_before=before
    )
    left = {
        i.id for i in docker_client.images.list(filters={"label": "io.ddctl.test=" + label["io.ddctl.test"]})
    }
    try:
        assert first != second and left == {second}
        assert docker_client.images.get(unlabelled).id == unlabelled  # never touched
        assert other not in {i.id for i in docker_client.images.list(all=True)}
        assert dangling not in {i.id for i in docker_client.images.list(all=True)}
        assert docker_client.images.get(f"{name}:stage").id == tagged_stage  # tagged: kept
    finally:
        docker_client.images.remove(second, force=True)
        docker_client.images.remove(f"{name}:stage", force=True)
