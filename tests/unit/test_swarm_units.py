"""Swarm batches without a swarm: sources, redaction, concurrency, and the exchange's
protocol (its real HTTP server on 127.0.0.1, driven the way task_runner.py drives it)."""

import io
import json
import os
import tarfile
import threading
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer

import pytest
from PIL import Image

from ddctl.errors import UsageError
from ddctl.fetch import get_picture
from ddctl.run.options import DreamOptions
from ddctl.swarm import exchange_server, task_runner
from ddctl.swarm.batch import (
    Item,
    default_concurrency,
    expand_sources,
    jobs_archive,
    read_done,
    redact,
    round_archive,
)


def test_folders_expand_to_their_pictures_in_order(tmp_path):
    for name in ("b.png", "a.JPG", ".hidden.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    got = expand_sources([str(tmp_path), "https://example.org/x.jpg", "one.png"])
    assert got == [str(tmp_path / "a.JPG"), str(tmp_path / "b.png"), "https://example.org/x.jpg", "one.png"]


def test_no_pictures_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as e:
        expand_sources([str(tmp_path)])
    assert e.value.exit_code == 2


def test_manifest_sources_carry_no_secret():
    assert redact("https://bob:hunter2@example.org:8443/p/cat.jpg?token=abc&x=1#frag") == (
        "https://example.org:8443/p/cat.jpg?token=…&x=…"
    )
    assert redact("/home/me/cat.jpg") == "/home/me/cat.jpg"


def _node(ncpu, state="ready", avail="active"):
    return {
        "Status": {"State": state},
        "Spec": {"Availability": avail},
        "Description": {"Resources": {"NanoCPUs": int(ncpu * 1e9)}},
    }


def test_concurrency_from_ready_active_nodes_cpus():
    nodes = [_node(2), _node(4), _node(8, state="down"), _node(8, avail="drain")]
    assert default_concurrency(nodes, 1.0) == 6
    assert default_concurrency(nodes, 0.5) == 12
    assert default_concurrency(nodes, 3) == 2  # at least one per node
    assert default_concurrency([], 1) == 1


def test_slot_zero_rendered_as_a_node_id():
    assert task_runner.slot_number("l2id9tuq4jjye7meiihfv4gi2") == 0
    assert task_runner.slot_number("7") == 7


@pytest.fixture
def exchange(tmp_path):
    root = tmp_path / "x"
    for sub in ("jobs", "rounds", "tmp", "out", "done"):
        (root / sub).mkdir(parents=True)

    class H(exchange_server.Handler):
        pass

    H.root = str(root)
    H.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _req(method, url, data=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method)) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_exchange_serves_jobs_and_keeps_only_the_first_result(exchange, tmp_path):
    root, url = exchange
    pic = tmp_path / "cat photo.png"
    Image.new("RGB", (40, 30), "red").save(pic)
    d = tmp_path / "fetched"
    d.mkdir()
    item = Item(pid="p0001", source=str(pic), picture=get_picture(str(pic), str(d)))
    for data in (jobs_archive([item], DreamOptions(iterations=2)), round_archive(0, ["p0001"])):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(root)
    code, body = _req("GET", f"{url}/job/0/0")
    meta = json.loads(body)
    assert code == 200 and meta["pid"] == "p0001"
    assert meta["args"][:2] == ["--output-dir", "{output}"] and "{input}" in meta["args"]
    code, data = _req("GET", f"{url}/input/p0001")
    assert code == 200 and data == open(item.picture.path, "rb").read()
    assert _req("GET", f"{url}/done/p0001")[0] == 404
    assert _req("GET", f"{url}/job/0/5")[0] == 404
    assert _req("GET", f"{url}/input/..")[0] == 404

    # Two attempts of the same picture (a node thought lost finished after all).
    for task in ("t1", "t2"):
        assert _req("PUT", f"{url}/upload/p0001/{task}/cat-x.png", task.encode())[0] == 201
        assert _req("PUT", f"{url}/upload/p0001/{task}/cat-x-steps/a%20b.png", b"s")[0] == 201
    first = json.dumps({"status": "done", "final": "cat-x.png", "node": "node2"}).encode()
    assert _req("POST", f"{url}/commit/p0001/t1", first)[0] == 201
    assert _req("POST", f"{url}/commit/p0001/t2", first)[0] == 409
    assert (root / "out" / "p0001" / "cat-x.png").read_bytes() == b"t1"
    assert (root / "out" / "p0001" / "cat-x-steps" / "a b.png").exists()
    assert os.listdir(root / "tmp") == []
    assert _req("GET", f"{url}/done/p0001")[0] == 200
    assert _req("PUT", f"{url}/upload/p0002/t/..%2F..%2Fescape", b"x")[0] == 404

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(root / "done", arcname="done")
    rec = read_done(buf.getvalue())["p0001"]
    assert rec["node"] == "node2" and rec["task"] == "t1" and rec["status"] == "done"


@pytest.mark.parametrize("name", ["task_runner.py", "exchange_server.py"])
def test_swarm_tasks_and_their_children_run_with_no_new_privileges(name):
    """Engine 20.10's service API cannot set no-new-privileges: the task's own command sets
    it, before its script, for itself and every process it starts (here: grep)."""
    import subprocess
    import sys

    from ddctl.swarm.batch import script, task_command

    cmd = task_command(name)
    prelude = script("no_new_privs.py")
    assert cmd[:3] == ["python3", "-I", "-c"] and cmd[3].startswith(prelude) and cmd[3].endswith(script(name))
    probe = prelude + "\nimport subprocess\nsubprocess.run(['grep', 'NoNewPrivs', '/proc/self/status'])"
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["NoNewPrivs:", "1"]
    plain = subprocess.run(["grep", "NoNewPrivs", "/proc/self/status"], capture_output=True, text=True).stdout
    assert plain.split() == ["NoNewPrivs:", "0"]  # the prelude, not the test's own process, made it 1
