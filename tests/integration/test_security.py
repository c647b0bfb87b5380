"""Issue 9 on the real daemon: the dream container imports only its own code and runs
locked down. Everything created carries the session's io.ddctl.test label and is removed."""

import json
import os

import numpy as np
import pytest
from dockertest import TEST_LABEL
from PIL import Image

PLANTED = "planted code ran"


def plant(folder):
    """An engine/ package and a numpy.py in the output folder that leave a mark if imported."""
    (folder / "engine").mkdir()
    mark = "open('/images/PWNED-%s', 'w').write('" + PLANTED + "')\n"
    (folder / "engine" / "__init__.py").write_text(mark % "engine")
    (folder / "numpy.py").write_text(mark % "numpy")
    rng = np.random.RandomState(0)
    Image.fromarray(rng.randint(0, 256, (96, 128, 3), dtype=np.uint8)).save(str(folder / "in.png"))
    for p in [folder, folder / "engine"]:
        os.chmod(str(p), 0o777)


@pytest.mark.parametrize("user,workdir", [("0:0", "/images"), ("1000:1000", None), (None, "/images")])
def test_the_image_never_imports_from_the_output_folder(docker_client, dream_image, tmp_path, user, workdir):
    """Even run by hand as root with the output folder as working folder (the old layout)."""
    out = tmp_path / "out"
    out.mkdir()
    plant(out)
    container = docker_client.containers.create(
        dream_image,
        command=["--progress", "json", "--", "in.png", "inception_3b/output", "1", "1"],
        volumes={str(out): {"bind": "/images", "mode": "rw"}},
        working_dir=workdir,
        user=user,
        labels=dict(TEST_LABEL),
        network_disabled=True,
        environment={"PYTHONPATH": "/images"},  # ignored by the isolated Python
    )
    try:
        container.start()
        code = container.wait(timeout=600)["StatusCode"]
        logs = container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True)
    assert code == 0, logs
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "done"
    assert not list(out.glob("PWNED*"))


def test_a_weights_url_secret_is_not_in_labels_nor_history(docker_client, dream_image):
    """--weights-url with user:password and ?token= : the image's label and `docker history`
    carry the URL without them (the download runs in a stage the image does not descend from)."""
    import hashlib
    import http.server
    import threading

    from image_fixtures import copy_from_image

    from ddctl.build import build_image

    data = copy_from_image(docker_client, dream_image, "/opt/ddctl/model/bvlc_googlenet.caffemodel")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    url = f"http://alice:pa55w0rdX@127.0.0.1:{port}/w.caffemodel?token=t0k3nSECRET"
    tag = "ddctl/deepdream:test-sec-secret"
    try:
        summary = build_image(
            docker_client,
            tag=tag,
            weights_url=url,
            weights_sha1=hashlib.sha1(data).hexdigest(),
            labels=TEST_LABEL,
        )
        image = docker_client.images.get(tag)
        source = image.labels["io.ddctl.weights.source"]
        assert source == f"http://***@127.0.0.1:{port}/w.caffemodel?token=***"
        history = json.dumps(image.history()) + json.dumps(image.attrs)
        assert "pa55w0rdX" not in history and "t0k3nSECRET" not in history
        assert summary.weights_sha1 == hashlib.sha1(data).hexdigest()
    finally:
        httpd.shutdown()
        httpd.server_close()
        try:
            docker_client.images.remove(tag, force=True)
        except Exception:
            pass
