"""`ddctl zoom` and `ddctl sheet` end to end: the real CLI, the real daemon, the real image
(untrained weights), small pictures. A video is checked with the image's own ffprobe."""

import hashlib
import json
import os
import time
import uuid

import numpy as np
import pytest
import test_models
from dockertest import TEST_LABEL
from dreamcli import containers_of, created_containers, ddctl, interrupt_after, last_line, mandelbrot
from PIL import Image
from test_models import guide_picture, photo

ZOOM = ["inception_3b/output", "2", "2", "--frames", "5", "--seed", "7", "--jitter", "8"]
SHEET_LAYERS = ["conv1/7x7_s2", "conv2/3x3", "inception_3a/output", "inception_3b/output"]


def creates(docker_client, tag, since):
    """How many containers ddctl created for this test (the daemon's own event log)."""
    return len(created_containers(docker_client, tag, since))


def frames_of(folder):
    return {
        n: hashlib.sha256(open(os.path.join(folder, n), "rb").read()).hexdigest()
        for n in sorted(os.listdir(folder))
        if n.endswith(".png")
    }


def ffprobe(docker_client, image, path):
    """(frames, width, height, codec, pix_fmt) of a video, read by the image's ffprobe."""
    out = docker_client.containers.run(
        image,
        entrypoint=["ffprobe"],
        command=[
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,width,height,codec_name,pix_fmt",
            "-of",
            "json",
            "/v/" + os.path.basename(path),
        ],
        volumes={os.path.dirname(path): {"bind": "/v", "mode": "ro"}},
        network_disabled=True,
        labels=dict(TEST_LABEL),
        user=f"{os.getuid()}:{os.getgid()}",
        remove=True,
    )
    s = json.loads(out)["streams"][0]
    return int(s["nb_read_frames"]), s["width"], s["height"], s["codec_name"], s["pix_fmt"]


@pytest.fixture(scope="module")
def pic(tmp_path_factory):
    d = tmp_path_factory.mktemp("zoompic")
    mandelbrot((160, 120)).save(str(d / "cat.png"))
    return str(d / "cat.png")


@pytest.fixture(scope="module")
def whole_zoom(docker_client, dream_image, pic, tmp_path_factory):
    """An uninterrupted 5-frame zoom: (completed process, output folder, test tag, start time)."""
    out = str(tmp_path_factory.mktemp("whole"))
    tag = "t" + uuid.uuid4().hex[:10]
    t0 = int(time.time())
    r = ddctl("zoom", pic, *ZOOM, "--image", dream_image, "-o", out, tag=tag)
    return r, out, tag, t0


def test_a_zoom_makes_frames_a_video_and_a_gif_in_one_container(docker_client, dream_image, whole_zoom):
    r, out, tag, t0 = whole_zoom
    assert r.returncode == 0, r.stderr
    video = os.path.join(out, "cat-zoom-inception_3b-output.mp4")
    assert last_line(r.stdout) == video
    folder = video[: -len(".mp4")]
    assert sorted(frames_of(folder)) == ["0000.png", "0001.png", "0002.png", "0003.png", "0004.png"]
    for n in frames_of(folder):
        with Image.open(os.path.join(folder, n)) as im:
            assert im.size == (160, 120)
    assert ffprobe(docker_client, dream_image, video) == (5, 160, 120, "h264", "yuv420p")
    with Image.open(folder + ".gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 5 and gif.size == (160, 120)
    assert "frame 5/5" in r.stderr and "ETA" in r.stderr
    assert creates(docker_client, tag, t0) == 1
    assert os.stat(video).st_uid == os.getuid()
    rec = json.load(open(os.path.join(folder, "zoom.json")))
    assert rec["complete"] is True and rec["seed"] == 7 and rec["frames"] == 5


def _interrupted_zoom(pic, image, out, tag, stop_after, *extra):
    code, _, err = interrupt_after(
        ["zoom", pic, *ZOOM, "--image", image, "-o", out, *extra], f"frame {stop_after}/", tag
    )
    assert code == 130, err
    assert "--resume" in err
    return err


@pytest.mark.parametrize("copy", [False, True], ids=["mount", "copy"])
def test_an_interrupted_zoom_resumes_to_the_same_frames(
    docker_client, dream_image, pic, whole_zoom, tmp_path, copy
):
    r, whole_out, _, _ = whole_zoom
    assert r.returncode == 0, r.stderr
    out, tag = str(tmp_path / "dreams"), "t" + uuid.uuid4().hex[:10]
    extra = ["--copy"] if copy else []
    _interrupted_zoom(pic, dream_image, out, tag, 3, *extra)
    folder = os.path.join(out, "cat-zoom-inception_3b-output")
    done = frames_of(folder)
    assert 3 <= len(done) < 5 and not os.path.exists(folder + ".mp4")
    assert os.path.exists(os.path.join(folder, ".resume.npz"))
    assert not containers_of(docker_client, tag)
    r2 = ddctl("zoom", pic, "--resume", "--image", dream_image, "-o", out, *extra, tag=tag)
    assert r2.returncode == 0, r2.stderr
    assert last_line(r2.stdout) == folder + ".mp4"
    assert frames_of(folder) == frames_of(os.path.join(whole_out, "cat-zoom-inception_3b-output"))
    assert ffprobe(docker_client, dream_image, folder + ".mp4")[0] == 5
    assert not os.path.exists(os.path.join(folder, ".resume.npz"))
    # and once complete there is nothing left to resume
    r3 = ddctl("zoom", pic, "--resume", "--image", dream_image, "-o", out, *extra, tag=tag)
    assert r3.returncode == 2 and "no unfinished zoom" in r3.stderr


def test_a_zoom_never_overwrites_and_refuses_bad_input_leaving_nothing(
    docker_client, dream_image, pic, tmp_path, tag
):
    out = tmp_path / "dreams"
    for args, words in [
        (["nosuchlayer"], "unknown layer 'nosuchlayer'"),
        (["inception_3b/output", "--frames", "0"], "--frames: must be a whole number from 1 to 9999"),
        (["--resume"], "no unfinished zoom of cat"),
    ]:
        r = ddctl("zoom", pic, *args, "--image", dream_image, "-o", str(out), tag=tag)
        assert r.returncode == 2, r.stderr
        assert words in r.stderr and "Traceback" not in r.stderr
        assert not out.exists() or os.listdir(str(out)) == []
    r = ddctl("zoom", pic, *ZOOM[:3], "--frames", "1", "--image", dream_image, "-o", str(out), tag=tag)
    r2 = ddctl(
        "zoom", pic, *ZOOM[:3], "--frames", "1", "--image", dream_image, "-o", str(out), "--copy", tag=tag
    )
    assert r.returncode == 0 and r2.returncode == 0, r.stderr + r2.stderr
    assert last_line(r2.stdout) == str(out / "cat-zoom-inception_3b-output-2.mp4")
    assert sorted(os.listdir(str(out))) == [
        "cat-zoom-inception_3b-output",
        "cat-zoom-inception_3b-output-2",
        "cat-zoom-inception_3b-output-2.gif",
        "cat-zoom-inception_3b-output-2.mp4",
        "cat-zoom-inception_3b-output.gif",
        "cat-zoom-inception_3b-output.mp4",
    ]


@pytest.mark.parametrize("copy", [False, True], ids=["mount", "copy"])
def test_a_sheet_of_four_layers_is_one_png_of_labelled_cells_from_one_container(
    docker_client, dream_image, pic, tmp_path, tag, copy
):
    out = str(tmp_path / "dreams")
    t0 = int(time.time())
    args = ["2", "2", "--layers", ",".join(SHEET_LAYERS), "--seed", "3", "--image", dream_image, "-o", out]
    r = ddctl("sheet", pic, *args, *(["--copy"] if copy else []), tag=tag)
    assert r.returncode == 0, r.stderr
    path = last_line(r.stdout)
    assert os.listdir(out) == [os.path.basename(path)] and path.endswith(".png")
    assert creates(docker_client, tag, t0) == 1
    assert [f"cell {i}/4  {layer}" in r.stderr for i, layer in enumerate(SHEET_LAYERS, 1)] == [True] * 4
    sheet = np.asarray(Image.open(path).convert("RGB"))
    gap, strip = 4, 21  # engine/sheet.py: GAP, and the label strip of a 160 px wide cell
    assert sheet.shape == (2 * (120 + strip) + 3 * gap, 2 * 160 + 3 * gap, 3)
    cells, labels = [], []
    for k in range(4):
        x, y = gap + (k % 2) * (160 + gap), gap + (k // 2) * (120 + strip + gap)
        cells.append(sheet[y : y + 120, x : x + 160])
        labels.append(sheet[y + 120 : y + 120 + strip, x : x + 160])
        assert (labels[-1].max(axis=2) > 200).sum() > 40  # light text on the dark strip
    # four different dreams of one picture, four different labels
    assert len({c.tobytes() for c in cells}) == 4 and len({lab.tobytes() for lab in labels}) == 4


def test_sheet_refuses_bad_cells_in_one_line(dream_image, pic, tmp_path, tag):
    out = tmp_path / "dreams"
    for args, words in [
        ([], "--layers all"),
        (["--layers", "conv1/7x7_s2,nope"], "unknown layer 'nope'"),
        (["--channels", "inception_3a/output:250-260"], "inception_3a/output has 256 channels (0 to 255)"),
    ]:
        r = ddctl("sheet", pic, "2", "1", *args, "--image", dream_image, "-o", str(out), tag=tag)
        assert r.returncode == 2, r.stderr
        assert words in r.stderr and "Traceback" not in r.stderr
        assert not out.exists() or os.listdir(str(out)) == []


# -----------------------------------------------------------------------------
# the dream options of `ddctl run`: --model (the trained open_nsfw ResNet of test_models.py)
# and --guide, in both transfers. Small: 128x96, 1-2 iterations, 1 octave.

NET_LAYER = test_models.LAYER  # the open_nsfw folder's manifest's default layer (stride 8)
nsfw_files, nsfw_dir = test_models.nsfw_files, test_models.nsfw_dir  # its fixtures, used here too


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    os.chmod(str(d), 0o755)
    photo(d / "cat.png", size=(128, 96))
    guide_picture(d / "guide.png", size=(96, 96))
    return d


def test_a_zoom_on_a_trained_model_resumes_with_that_model(
    docker_client, dream_image, nsfw_dir, small, tmp_path, tag
):
    """The interrupted zoom (archive copy) resumes with the model alone from zoom.json and
    gives the uninterrupted zoom's (mounts) frames."""
    zoom = [NET_LAYER, "2", "1", "--frames", "5", "--seed", "3", "--jitter", "4", "--model", str(nsfw_dir)]
    zoom += ["--image", dream_image]
    whole, part = str(tmp_path / "whole"), str(tmp_path / "part")
    r = ddctl("zoom", str(small / "cat.png"), *zoom, "-o", whole, tag=tag)
    assert r.returncode == 0, r.stderr
    folder = os.path.join(whole, f"cat-zoom-{NET_LAYER}")
    assert last_line(r.stdout) == folder + ".mp4"
    assert len(frames_of(folder)) == 5 and os.path.getsize(folder + ".gif") > 0
    rec = json.load(open(os.path.join(folder, "zoom.json")))
    assert rec["note"] == {"model": str(nsfw_dir)} and rec["mean"] == [104, 117, 123]
    # the trained net's dream, not the picture zoomed: frame 0 differs from the input
    first = np.asarray(Image.open(os.path.join(folder, "0000.png")), dtype=np.int16)
    assert np.abs(first - np.asarray(Image.open(str(small / "cat.png")), dtype=np.int16)).mean() > 0.5

    code, _, err = interrupt_after(
        ["zoom", str(small / "cat.png"), *zoom, "-o", part, "--copy"], "frame 1/", tag
    )
    assert code == 130, err
    pfolder = os.path.join(part, f"cat-zoom-{NET_LAYER}")
    assert 1 <= len(frames_of(pfolder)) < 5
    other = nsfw_dir.parent / "other"
    other.mkdir(exist_ok=True)
    r = ddctl("zoom", pfolder, "--resume", "--model", str(other), "-o", part, "--image", dream_image, tag=tag)
    assert r.returncode == 2 and f"made with --model {nsfw_dir}, not --model {other}" in r.stderr
    r = ddctl(
        "zoom", str(small / "cat.png"), "--resume", "-o", part, "--image", dream_image, "--copy", tag=tag
    )
    assert r.returncode == 0, r.stderr
    assert frames_of(pfolder) == frames_of(folder)
    assert not containers_of(docker_client, tag)


def sheet_cells(path, n, h=96, w=128):
    sheet = np.asarray(Image.open(path).convert("RGB"))
    cols = int(np.ceil(np.sqrt(n)))
    strip = max(11, min(24, w // 16)) + 10
    return [
        sheet[4 + (k // cols) * (h + strip + 4) :][:h, 4 + (k % cols) * (w + 4) :][:, :w] for k in range(n)
    ]


@pytest.mark.parametrize("copy", [False, True], ids=["mount", "copy"])
def test_a_guided_sheet_on_a_trained_model(docker_client, dream_image, nsfw_dir, small, tmp_path, tag, copy):
    out = str(tmp_path / "dreams")
    layers = f"{NET_LAYER},{NET_LAYER}:7"
    args = ["1", "1", "--model", str(nsfw_dir), "--seed", "5", "--image", dream_image, "-o", out]
    args += ["--copy"] if copy else []
    t0 = int(time.time())
    r = ddctl(
        "sheet",
        str(small / "cat.png"),
        "--layers",
        NET_LAYER,
        "--guide",
        str(small / "guide.png"),
        *args,
        tag=tag,
    )
    assert r.returncode == 0, r.stderr
    guided = last_line(r.stdout)
    assert guided == os.path.join(out, "cat-sheet-1-cells-guided-i1-o1.png")
    # one listing container (the model checked before the sheet's) and the sheet's
    assert creates(docker_client, tag, t0) <= 2
    r = ddctl("sheet", str(small / "cat.png"), "--layers", layers, *args, tag=tag)
    assert r.returncode == 0, r.stderr
    plain = last_line(r.stdout)
    assert f"cell 2/2  {NET_LAYER}:7" in r.stderr
    g, (p, ch) = sheet_cells(guided, 1)[0], sheet_cells(plain, 2)
    # same seed, same layer: only the guide (or the channel objective) makes them differ
    assert np.abs(g.astype(int) - p.astype(int)).mean() > 0.2
    assert np.abs(ch.astype(int) - p.astype(int)).mean() > 0.2


def test_a_bad_model_or_a_missing_guide_is_refused_before_any_container(
    docker_client, dream_image, small, tmp_path, tag
):
    out = tmp_path / "dreams"
    empty = tmp_path / "empty_net"
    empty.mkdir()
    (empty / "deploy.prototxt").write_text("name: 'x'\n")
    t0 = int(time.time())
    pic = str(small / "cat.png")
    for args, words in [
        (["zoom", pic, "--model", str(empty)], "holds no .caffemodel"),
        (["zoom", pic, "--guide", str(tmp_path / "none.png")], "none.png: no such file"),
        (["sheet", pic, "--layers", "all", "--model", str(tmp_path / "nonet")], "no such folder"),
        (["sheet", pic, "--layers", "all", "--guide", str(tmp_path / "none.png")], "none.png: no such file"),
        (["sheet", pic, "--layers", "all", "--channels", "conv1/7x7_s2:0-3"], "not both"),
    ]:
        r = ddctl(*args, "-o", str(out), "--image", dream_image, "--no-build", tag=tag)
        said = [line for line in r.stderr.splitlines() if line.startswith("ddctl:")]  # after "input: ..."
        assert r.returncode == 2 and len(said) == 1 and words in said[0] and "Traceback" not in r.stderr, (
            r.stderr
        )
        assert not out.exists() or os.listdir(str(out)) == []
    assert creates(docker_client, tag, t0) == 0
