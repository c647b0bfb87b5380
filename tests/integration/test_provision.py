"""The provision scripts are safe to re-run: they leave a running daemon and an existing
base image alone."""

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def script(name, *args):
    return subprocess.run(
        ["bash", os.path.join(ROOT, "provision", name), *args], capture_output=True, text=True, timeout=300
    )


def test_start_dockerd_leaves_a_running_daemon_alone(docker_client):
    before = docker_client.info()["ID"], docker_client.info().get("SystemTime")
    r = script("start-dockerd.sh")
    assert r.returncode == 0, r.stderr
    assert "already answers" in r.stderr
    assert docker_client.info()["ID"] == before[0]


def test_bootstrap_leaves_an_existing_base_image_alone(docker_client, base_image):
    image_id = docker_client.images.get(base_image).id
    r = script("bootstrap-base-image.sh", base_image)
    assert r.returncode == 0, r.stderr
    assert "present" in r.stderr
    assert docker_client.images.get(base_image).id == image_id
