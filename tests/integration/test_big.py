"""Big pictures and batches end to end: the real CLI, the real daemon, the real image.

- a 24 MP picture dreams with --max-size 0 in tiles, its container's memory peak measured
  from the daemon's stats while it runs (cgroup v1 max_usage, or the usage sampled);
- a folder of 6 pictures, one broken: 5 results, a manifest, exit 1 naming the broken one,
  from one container (the daemon's create events); a second run creates no container;
- the same through the archive copy; Ctrl-C mid-batch keeps the finished pictures;
- a container killed for memory is one sentence that says what to do;
- the tiled gradient on Caffe against the whole-picture one, and no seam (in the image).
"""

import json
import os
import threading
import time

import numpy as np
from dreamcli import containers_of, created_containers, ddctl, env_for, interrupt_after, write_pictures
from image_fixtures import REPO, run_in_image
from PIL import Image

LAYER = "inception_3b/output"


def manifest(out):
    with open(str(out / "manifest.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_a_folder_with_a_broken_picture_dreams_the_others_in_one_container(
    docker_client, dream_image, tmp_path, tag
):
    src, out = tmp_path / "holiday", tmp_path / "dreams"
    write_pictures(src, 5)
    (src / "p3-broken.jpg").write_bytes(b"<!doctype html><html>Sign in</html>")
    since = int(time.time()) - 1
    r = ddctl("run", str(src), LAYER, "1", "2", "--image", dream_image, "-o", str(out), env=env_for(tag))
    assert r.returncode == 1, r.stderr[-3000:]
    results = sorted(n for n in os.listdir(str(out)) if n.endswith(".png"))
    assert results == [f"p{i}-inception_3b-output-i1-o2.png" for i in range(5)]
    last = [line for line in r.stderr.splitlines() if line.startswith("ddctl: ")]
    assert last == ["ddctl: 1 of 6 pictures failed:"], r.stderr[-2000:]
    assert "p3-broken.jpg: " in r.stderr.split("ddctl: 1 of 6 pictures failed:")[1]
    assert sorted(r.stdout.split()) == [str(out / n) for n in results]  # one path a line
    assert len(created_containers(docker_client, tag, since)) == 1
    assert containers_of(docker_client, tag) == []
    m = manifest(out)
    assert sorted((x["source"], x["status"]) for x in m) == sorted(
        [(f"p{i}.jpg", "done") for i in range(5)] + [("p3-broken.jpg", "failed")]
    )
    done = [x for x in m if x["status"] == "done"]
    assert all(x["output"].endswith(".png") and x["seed"] is not None and x["seconds"] > 0 for x in done)
    assert all(x["options"]["layer"] == LAYER and x["options"]["iterations"] == 1 for x in m)

    # a second run does no work: no container, the results untouched
    stamps = {n: os.path.getmtime(str(out / n)) for n in results}
    since = int(time.time()) - 1
    r2 = ddctl("run", str(src), LAYER, "1", "2", "--image", dream_image, "-o", str(out), env=env_for(tag))
    assert r2.returncode == 1 and "5 already dreamed (skipped" in r2.stderr and "p3-broken.jpg" in r2.stderr
    assert created_containers(docker_client, tag, since) == []
    assert {n: os.path.getmtime(str(out / n)) for n in results} == stamps


def test_a_list_of_sources_through_the_archive_copy(docker_client, dream_image, tmp_path, tag):
    src, out = tmp_path / "in", tmp_path / "out"
    write_pictures(src, 2)
    (tmp_path / "list.txt").write_text("in/p0.jpg\n# a comment\nin/p1.jpg\nin/missing.jpg\n")
    r = ddctl(
        "run",
        str(tmp_path / "list.txt"),
        LAYER,
        "1",
        "1",
        "--copy",
        "--save-steps",
        "--image",
        dream_image,
        "-o",
        str(out),
        env=env_for(tag),
    )
    assert r.returncode == 1 and "copied in and out through the Docker API" in r.stderr
    assert "missing.jpg" in r.stderr.split("ddctl: 1 of 3 pictures failed:")[1]
    for i in range(2):
        assert Image.open(str(out / f"p{i}-inception_3b-output-i1-o1.png")).size == (120, 90)
        assert os.listdir(str(out / f"p{i}-inception_3b-output-i1-o1-steps")) == [
            "inception_3b-output-0-0.png"
        ]
    assert [(x["source"], x["status"]) for x in manifest(out)] == [
        ("missing.jpg", "failed"),
        ("p0.jpg", "done"),
        ("p1.jpg", "done"),
    ]
    assert manifest(out)[1]["output"] == "p0-inception_3b-output-i1-o1.png"


def test_unicode_names_come_back_through_the_archive_copy(docker_client, dream_image, tmp_path, tag):
    """Names a user recognises (ddctl/run/naming.py) survive the copy out: a non-ASCII name
    travels in a PAX header of Docker's tar (it was lost there, the manifest said done)."""
    src, out = tmp_path / "in", tmp_path / "out"
    write_pictures(src, 2)
    (src / "p0.jpg").rename(src / "Müller-Straße.jpg")
    (src / "p1.jpg").rename(src / "雪 景.jpg")
    args = ["run", str(src), LAYER, "1", "1", "--copy", "--image", dream_image, "-o", str(out)]
    r = ddctl(*args, env=env_for(tag))
    assert r.returncode == 0, r.stderr[-3000:]
    names = sorted(n for n in os.listdir(str(out)) if n.endswith(".png"))
    assert names == ["Müller-Straße-inception_3b-output-i1-o1.png", "雪_景-inception_3b-output-i1-o1.png"]
    assert sorted(r.stdout.split("\n")[:-1]) == [str(out / n) for n in names]
    assert sorted(x["output"] for x in manifest(out)) == names
    r2 = ddctl(*args, env=env_for(tag))
    assert r2.returncode == 0 and "2 already dreamed (skipped" in r2.stderr, r2.stderr


def test_ctrl_c_mid_batch_keeps_the_finished_pictures(docker_client, dream_image, tmp_path, tag):
    src, out = tmp_path / "in", tmp_path / "out"
    write_pictures(src, 6, size=(200, 150))
    code, _, err = interrupt_after(
        ["run", str(src), LAYER, "3", "2", "--image", dream_image, "-o", str(out)], "[2/6] ", tag
    )
    assert "[2/6] p1.jpg: dreamed" in err, err
    assert code == 130, err
    assert "already dreamed stay in" in err
    kept = sorted(n for n in os.listdir(str(out)) if n.endswith(".png"))
    assert kept[:2] == ["p0-inception_3b-output-i3-o2.png", "p1-inception_3b-output-i3-o2.png"]
    assert 2 <= len(kept) < 6
    assert len(manifest(out)) == len(kept)
    assert containers_of(docker_client, tag) == []


class PeakMemory:
    """The memory peak of the containers labelled io.ddctl.testcase=<tag>, from the
    daemon's stats while they run (cgroup v1: max_usage; else the usage, sampled)."""

    def __init__(self, docker_client, tag):
        self.client, self.tag, self.peak, self.seen = docker_client, tag, 0, set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self):
        while not self.stop.is_set():
            for c in containers_of(self.client, self.tag):
                try:
                    mem = c.stats(stream=False).get("memory_stats") or {}
                except Exception:
                    continue
                self.seen.add(c.id)
                self.peak = max(self.peak, int(mem.get("max_usage") or 0), int(mem.get("usage") or 0))
            self.stop.wait(0.5)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


def test_a_24_megapixel_picture_dreams_at_full_size_in_under_3_gb(docker_client, dream_image, tmp_path, tag):
    src = tmp_path / "wide.jpg"
    yy, xx = np.mgrid[0:4000, 0:6000]
    img = np.stack([(xx // 7) % 256, (yy // 5) % 256, ((xx + yy) // 11) % 256], -1).astype(np.uint8)
    Image.fromarray(img).save(str(src), "JPEG", quality=85)
    out = tmp_path / "out"
    with PeakMemory(docker_client, tag) as peak:
        r = ddctl(
            "run",
            str(src),
            "inception_4c/output",
            "1",
            "1",
            "--max-size",
            "0",
            "--image",
            dream_image,
            "-o",
            str(out),
            env=env_for(tag),
            timeout=1800,
        )
    assert r.returncode == 0, r.stderr[-3000:]
    with Image.open(r.stdout.split()[-1]) as im:
        assert im.size == (6000, 4000)
    assert peak.seen, "the container was never seen running"
    print(f"24 MP, 1 iteration, 1 octave: container memory peak {peak.peak / 2**30:.2f} GB")
    assert 0 < peak.peak < 3 * 2**30


def test_a_container_killed_for_memory_says_what_to_do(dream_image, tmp_path, tag):
    src = tmp_path / "p.jpg"
    Image.effect_mandelbrot((1280, 1000), (-2, -1.2, 1, 1.2), 40).convert("RGB").save(str(src))
    r = ddctl(
        "run",
        str(src),
        "inception_4c/output",
        "1",
        "1",
        "--tile",
        "0",
        "--image",
        dream_image,
        "-o",
        str(tmp_path / "out"),
        env=env_for(tag, DDCTL_MEMORY="400m"),
    )
    assert r.returncode == 1, r.stderr[-2000:]
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("ddctl: ")]
    assert "ran out of memory (its limit is 400 MB)" in line and "--max-size" in line and "--tile" in line
    assert "137" not in line and "Traceback" not in r.stderr


def test_the_tiled_gradient_on_caffe_is_the_whole_one_away_from_edges_and_shows_no_seam(
    docker_client, dream_image
):
    code, out, err = run_in_image(
        docker_client,
        dream_image,
        ["/src/tests/integration/in_image/check_tiles.py", "inception_4c/output", "896", "576", "512"],
        entrypoint=["python3"],
        volumes={os.path.join(REPO, "tests"): {"bind": "/src/tests", "mode": "ro"}},
    )
    assert code == 0, out + err
    res = json.loads(out.strip().splitlines()[-1])
    print(res)
    assert res["edges"] >= 2
    d = res["by_distance"]
    assert d["128-1000000"] < 0.005  # the whole picture's gradient, far from core edges
    assert d["64-128"] < 0.02 and d["0-8"] < 0.3  # measured 0.5% and 19% (README)
    # no seam: the mean |gradient| in 8 px bands across every core edge is the whole one's
    assert 0.95 < res["band_ratio_min"] and res["band_ratio_max"] < 1.05, res
