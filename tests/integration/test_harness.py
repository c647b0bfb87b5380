"""The harness itself: ddctl's client reaches a real daemon, and a container from the
base image writes into a bind-mounted host folder that we read back."""

from dockertest import TEST_LABEL

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
