"""`ddctl zoom` and `ddctl sheet` with the dream options of `ddctl run` (issue 11): --model,
--guide, objectives, --tile. The host argv as the engine's own parser reads it (the
contract), what zoom.json keeps for --resume, the engine's guided zoom and sheet on the fake
net, and the refusals that come before Docker (the CLI, with no daemon to reach)."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from test_engine_fakenet import FakeNet  # noqa: E402

from ddctl import objective  # noqa: E402
from ddctl.commands import sheet as sheet_cmd  # noqa: E402
from ddctl.errors import UsageError  # noqa: E402
from ddctl.fetch import Picture  # noqa: E402
from ddctl.models import Model, reference  # noqa: E402
from ddctl.zoom import (  # noqa: E402
    ZoomOptions,
    check_noted,
    guide_reference,
    note_of,
    resume_command,
    zoom_command,
)
from engine import cli, dream, objectives, zoom  # noqa: E402
from engine import sheet as engine_sheet  # noqa: E402

MODEL = Model(
    "nsfw", "/home/me/nets/nsfw", "deploy.prototxt", "resnet.caffemodel", mean=(104.0, 117.0, 123.0)
)
GUIDE = Picture(
    path="/tmp/x/flowers.png", stem="flowers", width=40, height=30, format="PNG", source="flowers.png"
)


# -----------------------------------------------------------------------------
# the host's argv, read by the engine's parser


def test_a_zoom_with_a_model_a_guide_and_a_tile_reaches_the_engine_as_meant():
    opts = ZoomOptions(
        layer="eltwise_stage1_block3:7",
        iterations=2,
        octaves=1,
        frames=3,
        seed=4,
        tile=512,
        model=MODEL,
        guide=GUIDE,
        note=note_of("/home/me/nets/nsfw", "/home/me/flowers.png"),
    )
    a = cli.parse_args(zoom_command("/input/cat.png", "cat", opts))
    assert (a.mode, a.layer, a.frames, a.seed, a.tile) == ("zoom", "eltwise_stage1_block3:7", 3, 4, 512)
    assert (a.prototxt, a.weights) == (
        "/input/ddctl-model/deploy.prototxt",
        "/input/ddctl-model/resnet.caffemodel",
    )
    assert a.mean == [104.0, 117.0, 123.0] and a.guide == "/input/ddctl-guide/flowers.png"
    assert a.note == {"model": "/home/me/nets/nsfw", "guide": "/home/me/flowers.png"}


def test_a_plain_zoom_has_no_note_and_its_resume_gives_the_model_again():
    a = cli.parse_args(
        zoom_command("/input/cat.png", "cat", ZoomOptions(layer="conv2", iterations=1, octaves=1))
    )
    assert a.note is None and a.guide is None and a.prototxt == cli.DEFAULT_PROTOTXT
    a = cli.parse_args(resume_command("cat-zoom-x", MODEL))
    assert (a.resume, a.prototxt, a.weights, a.source) == (
        "cat-zoom-x",
        "/input/ddctl-model/deploy.prototxt",
        "/input/ddctl-model/resnet.caffemodel",
        None,
    )


def test_a_sheet_with_a_model_and_a_guide_reaches_the_engine_as_meant():
    args = sheet_cmd.add_parser(_subparsers()).parse_args(
        [
            "cat.png",
            "2",
            "1",
            "--layers",
            "a,b:1,2,c*1+d*0.5",
            "--guide",
            "g.png",
            "--tile",
            "0",
            "--seed",
            "5",
        ]
    )
    opts = sheet_cmd.options_of(args)
    opts.model, opts.guide = MODEL, GUIDE
    a = cli.parse_args(sheet_cmd.sheet_command("/input/cat.png", "cat", args, opts))
    assert (a.mode, a.layers, a.channels, a.iterations, a.octaves, a.seed, a.tile) == (
        "sheet",
        "a,b:1,2,c*1+d*0.5",
        None,
        2,
        1,
        5,
        0,
    )
    assert a.prototxt == "/input/ddctl-model/deploy.prototxt" and a.guide == "/input/ddctl-guide/flowers.png"
    assert a.max_size == sheet_cmd.SHEET_MAX_SIZE


def _subparsers():
    import argparse

    return argparse.ArgumentParser(prog="ddctl").add_subparsers()


# -----------------------------------------------------------------------------
# the cells of a sheet: the host reads them as the engine does


@pytest.mark.parametrize(
    "spec",
    ["a,b", "a:1,2,b", "a:1,2", " a , b:3 ", "a*1+b:2,3,c", "a:1*2,3", "a,,b", "x+y:4,5,6,z:1"],
)
def test_the_host_splits_layers_as_the_engine(spec):
    assert objective.split_cells(spec) == engine_sheet.split_layers(spec)


def test_layers_may_be_objectives():
    assert objective.split_cells("a,b:1,2,c*1+d*0.5") == ["a", "b:1,2", "c*1+d*0.5"]


def test_the_cells_to_check_against_the_net_and_their_refusals():
    assert objective.check_cells("all", None) == []
    assert objective.check_cells(None, "a:0-2,5") == ["a:0,1,2,5"]
    assert objective.check_cells("a,b:7", None) == ["a", "b:7"]
    for layers, channels, words in [
        (None, None, "Say what the cells are"),
        ("all", "a:0-3", "Give --layers or --channels, not both"),
        (",", None, "--layers is all or"),
    ]:
        with pytest.raises(UsageError, match=words):
            objective.check_cells(layers, channels)


# -----------------------------------------------------------------------------
# what a zoom keeps for --resume


def _zoom_folder(tmp_path, note):
    folder = tmp_path / "cat-zoom-x"
    folder.mkdir()
    (folder / "zoom.json").write_text(json.dumps({"layer": "conv2", "note": note}))
    return str(folder)


def test_resume_refuses_another_model_or_guide_and_takes_the_same(tmp_path):
    folder = _zoom_folder(tmp_path, note_of("/nets/nsfw", None))
    check_noted(folder, None, None)  # nothing given: the zoom's own
    check_noted(folder, "/nets/nsfw", None)
    with pytest.raises(UsageError, match="made with --model /nets/nsfw, not --model /nets/other"):
        check_noted(folder, "/nets/other", None)
    with pytest.raises(UsageError, match="made with no guide, not --guide /g.png"):
        check_noted(folder, None, "/g.png")
    plain = _zoom_folder(tmp_path / "p", None) if (tmp_path / "p").mkdir() is None else None
    with pytest.raises(UsageError, match="made with the image's own model"):
        check_noted(plain, "googlenet_places205", None)


def test_references_name_models_and_guides_for_later(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert reference(None) is None and reference("bvlc_googlenet") is None
    assert reference("googlenet_places205") == "googlenet_places205"
    assert reference("nets/nsfw") == str(tmp_path / "nets" / "nsfw")
    assert guide_reference("g.png") == str(tmp_path / "g.png")
    shown = guide_reference("https://user:secret@example.test/g.png?sig=abc")
    assert "secret" not in shown and "abc" not in shown
    assert note_of(None, None) is None


# -----------------------------------------------------------------------------
# the engine: a guided zoom resumes to the same bytes, a guided sheet


@pytest.fixture
def pics(tmp_path, monkeypatch):
    rs = np.random.RandomState(0)
    Image.fromarray(rs.randint(0, 256, (40, 56, 3)).astype(np.uint8)).save(str(tmp_path / "cat.png"))
    Image.fromarray(rs.randint(0, 256, (30, 26, 3)).astype(np.uint8)).save(str(tmp_path / "flowers.png"))

    def encode(folder, frames, fps, width, height, threads=None):
        for ext in (".mp4", ".gif"):
            with open(folder + ext, "wb") as f:
                f.write(b"video")
        return [folder + ".mp4", folder + ".gif"]

    monkeypatch.setattr(zoom, "_ffmpeg", lambda: "/usr/bin/ffmpeg")
    monkeypatch.setattr(zoom, "encode", encode)
    return tmp_path


class StopAfter(FakeNet):
    """Ctrl-C at the n-th gradient."""

    def __init__(self, n):
        FakeNet.__init__(self)
        self.n = n

    def input_gradient(self, data, end):
        if self.calls + 1 >= self.n:
            raise KeyboardInterrupt
        return FakeNet.input_gradient(self, data, end)


def run(argv, net=None):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, net_factory=lambda p, w: net or FakeNet(), stdout=out, stderr=err)
    return code, [json.loads(x) for x in out.getvalue().splitlines()], err.getvalue()


GUIDED = ["--mode", "zoom", "cat.png", "conv2", "2", "1", "--frames", "3", "--seed", "2", "--jitter", "3"]
GUIDED += ["--guide", "flowers.png", "--note", '{"guide": "/home/me/flowers.png"}']


def frames_of(folder):
    return {
        n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder)) if n[0].isdigit()
    }


def test_a_guided_zoom_is_the_guided_dream_and_resumes_to_the_same_bytes(pics, tmp_path_factory):
    whole = tmp_path_factory.mktemp("whole")
    for n in ("cat.png", "flowers.png"):
        Image.open(str(pics / n)).save(str(whole / n))
    code, ev, err = run(GUIDED + ["--output-dir", str(whole)])
    assert code == 0, err
    folder = whole / "cat-zoom-conv2-guided"
    rec = json.loads((folder / "zoom.json").read_text())
    assert rec["guide"] == str(whole / "flowers.png") and rec["note"] == {"guide": "/home/me/flowers.png"}
    # frame 0 is the notebook's guided dream (objective_guide) of the picture
    img = np.asarray(Image.open(str(pics / "cat.png")))
    guide = np.asarray(Image.open(str(pics / "flowers.png")))
    net = FakeNet()
    want = dream.to_uint8(
        dream.deepdream(
            net,
            img,
            iter_n=2,
            octave_n=1,
            end=objectives.guide(net, guide, "conv2"),
            jitter=3,
            rng=np.random.RandomState(2),
        )
    )
    assert np.array_equal(np.asarray(Image.open(str(folder / "0000.png"))), want)
    # Ctrl-C in frame 2 (2 gradients a frame); the guide is gone when the zoom resumes:
    # it dreams with the guide's pixels kept in the folder
    code, ev, err = run(GUIDED + ["--output-dir", str(pics)], net=StopAfter(4))
    assert code == 130, err
    (pics / "flowers.png").unlink()
    code, ev, err = run(["--mode", "zoom", "--resume", "cat-zoom-conv2-guided", "--output-dir", str(pics)])
    assert code == 0, err
    assert ev[0]["first_frame"] == 1 and ev[0]["guide"] == str(pics / "flowers.png")
    assert frames_of(str(pics / "cat-zoom-conv2-guided")) == frames_of(str(folder))


def test_a_resumed_zoom_refuses_a_guide_and_a_bad_note(pics):
    code, ev, _ = run(GUIDED + ["--output-dir", str(pics)], net=StopAfter(4))
    assert code == 130
    code, ev, _ = run(
        [
            "--mode",
            "zoom",
            "--resume",
            "cat-zoom-conv2-guided",
            "--guide",
            "flowers.png",
            "--output-dir",
            str(pics),
        ]
    )
    assert code == 2 and "--guide cannot change" in ev[-1]["message"]
    before = sorted(os.listdir(str(pics)))
    code, ev, _ = run(["--mode", "zoom", "cat.png", "conv2", "--note", "[1]", "--output-dir", str(pics)])
    assert code == 2 and "--note is a JSON object" in ev[-1]["message"]
    assert sorted(os.listdir(str(pics))) == before


def test_a_guided_sheet_dreams_each_layer_guided_and_objectives_are_cells(pics):
    code, ev, err = run(
        ["--mode", "sheet", "cat.png", "-", "2", "1", "--layers", "conv1,conv2", "--guide", "flowers.png"]
        + ["--seed", "4", "--output-dir", str(pics)]
    )
    assert code == 0, err
    path = str(pics / "cat-sheet-2-cells-guided-i2-o1.png")
    assert ev[-1]["path"] == path
    got = np.asarray(Image.open(path))
    img = np.asarray(Image.open(str(pics / "cat.png")))
    guide = np.asarray(Image.open(str(pics / "flowers.png")))
    for (x, y, w, h), layer in zip(engine_sheet.cell_boxes(2, 40, 56), ["conv1", "conv2"]):
        net = FakeNet()
        end = objectives.guide(net, guide, layer)
        want = dream.to_uint8(
            dream.deepdream(net, img, iter_n=2, octave_n=1, end=end, rng=np.random.RandomState(4))
        )
        assert np.array_equal(got[y : y + h, x : x + w], want), layer
    code, ev, err = run(
        ["--mode", "sheet", "cat.png", "-", "1", "1", "--layers", "conv1,conv2:0,3,conv1*1+conv3*0.5"]
        + ["--output-dir", str(pics)]
    )
    assert code == 0, err
    assert [e["label"] for e in ev if e["event"] == "cell"] == ["conv1", "conv2:0,3", "conv1*1+conv3*0.5"]


def test_the_engine_refuses_layers_and_channels_together(pics):
    before = sorted(os.listdir(str(pics)))
    code, ev, _ = run(
        [
            "--mode",
            "sheet",
            "cat.png",
            "--layers",
            "all",
            "--channels",
            "conv1:0-3",
            "--output-dir",
            str(pics),
        ]
    )
    assert code == 2 and "not both" in ev[-1]["message"]
    assert sorted(os.listdir(str(pics))) == before


# -----------------------------------------------------------------------------
# the CLI: refused in one line, exit 2, before Docker (no daemon can be reached here)


@pytest.fixture
def here(tmp_path):
    Image.new("RGB", (64, 48), (200, 100, 50)).save(str(tmp_path / "cat.png"))
    (tmp_path / "badnet").mkdir()
    (tmp_path / "badnet" / "deploy.prototxt").write_text("name: 'x'\n")
    return tmp_path


@pytest.mark.parametrize(
    "argv,words",
    [
        (
            ["sheet", "cat.png", "--layers", "all", "--channels", "conv1/7x7_s2:0-3"],
            "Give --layers or --channels, not both",
        ),
        (["sheet", "cat.png", "--channels", "a:0-3", "--guide", "cat.png"], "--guide works on whole layers"),
        (["sheet", "cat.png", "--layers", "a,b:1*x"], "the weight of b must be"),
        (["sheet", "cat.png", "--layers", "all", "--model", "badnet"], "holds no .caffemodel"),
        (["sheet", "cat.png", "--layers", "all", "--guide", "nothere.png"], "nothere.png: no such file"),
        (["zoom", "cat.png", "--model", "nonet"], "unknown model 'nonet'"),
        (["zoom", "cat.png", "--model", "./badnet"], "holds no .caffemodel"),
        (["zoom", "cat.png", "--guide", "nothere.png"], "nothere.png: no such file"),
        (["zoom", "cat.png", "a:1", "--guide", "cat.png"], "--guide works on one whole layer"),
        (["zoom", "cat.png", "--tile", "100"], "must be 0 (no tiles) or at least 256"),
        (["zoom", "cat.png", "--frames", "0"], "--frames: must be a whole number from 1 to 9999"),
        (["zoom", "cat.png", "--resume", "--model", "./badnet"], "no unfinished zoom of cat"),
    ],
)
def test_bad_options_are_one_line_exit_2_before_docker(here, argv, words):
    env = dict(
        os.environ, DOCKER_HOST="tcp://127.0.0.1:9", PYTHONPATH=ROOT, DDCTL_CACHE_DIR=str(here / "cache")
    )
    env.pop("DDCTL_TRANSFER", None)
    r = subprocess.run(
        [sys.executable, "-m", "ddctl", *argv, "-o", "out"],
        cwd=str(here),
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    # one line says it (argparse's own refusals come after its usage lines, as for `ddctl run`)
    assert words in lines[-1] and "Traceback" not in r.stderr, r.stderr
    assert not (here / "out").exists() or os.listdir(str(here / "out")) == []
