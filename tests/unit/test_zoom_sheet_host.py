"""ddctl zoom / ddctl sheet on the host: the engine argv they build (parsed by the engine's
own parser: the contract), naming of copied-out results, finding the zoom --resume continues."""

import argparse
import json
import os

import pytest

from ddctl.commands import sheet as sheet_cmd
from ddctl.errors import UsageError
from ddctl.modes import plan_names
from ddctl.zoom import ZoomOptions, check_resume, find_resume, resume_command, stem_of, zoom_command
from engine import cli as engine_cli


def test_zoom_command_is_read_by_the_engine_as_meant():
    opts = ZoomOptions(
        layer="--output-dir=/x",
        iterations=3,
        octaves=2,
        octave_scale=1.5,
        jitter=4,
        seed=11,
        max_size=320,
        frames=20,
        scale=0.1,
        rotate=-1.5,
        fps=12,
    )
    a = engine_cli.parse_args(zoom_command("/input/cat.png", "cat", opts))
    assert (a.mode, a.source, a.layer, a.iterations, a.octaves, a.octave_scale) == (
        "zoom",
        "/input/cat.png",
        "--output-dir=/x",
        3,
        2,
        1.5,
    )
    assert (a.frames, a.scale, a.rotate, a.fps, a.jitter, a.seed, a.max_size, a.name) == (
        20,
        0.1,
        -1.5,
        12,
        4,
        11,
        320,
        "cat",
    )
    assert a.output_dir == "/images" and a.progress == "json"


def test_resume_command_names_only_the_folder():
    a = engine_cli.parse_args(resume_command("cat-zoom-x"))
    assert (a.mode, a.resume, a.source) == ("zoom", "cat-zoom-x", None)


def test_sheet_command_is_read_by_the_engine_as_meant():
    args = argparse.Namespace(
        layers="conv1,conv2",
        channels="conv3:0-3",
        step_size=None,
        jitter=None,
        seed=5,
        max_size=512,
        iterations=2,
        octaves=3,
        octave_scale=1.4,
    )
    a = engine_cli.parse_args(
        sheet_cmd.sheet_command("/input/cat.png", "cat", args, sheet_cmd.options_of(args))
    )
    assert (a.mode, a.layers, a.channels, a.seed, a.max_size, a.iterations, a.octaves) == (
        "sheet",
        "conv1,conv2",
        "conv3:0-3",
        5,
        512,
        2,
        3,
    )


def test_a_copied_out_zoom_keeps_its_folder_and_videos_together(tmp_path):
    (tmp_path / "cat-zoom-a").mkdir()
    (tmp_path / "cat-zoom-a-2.gif").write_bytes(b"x")
    plan = plan_names({"cat-zoom-a", "cat-zoom-a.mp4", "cat-zoom-a.gif"}, str(tmp_path))
    assert plan == {
        "cat-zoom-a": "cat-zoom-a-3",
        "cat-zoom-a.mp4": "cat-zoom-a-3.mp4",
        "cat-zoom-a.gif": "cat-zoom-a-3.gif",
    }
    assert plan_names({"s.png"}, str(tmp_path)) == {"s.png": "s.png"}
    (tmp_path / "s.png").write_bytes(b"x")
    assert plan_names({"s.png"}, str(tmp_path)) == {"s.png": "s-2.png"}
    # a resumed zoom merges into its own folder
    assert plan_names({"cat-zoom-a", "cat-zoom-a.mp4"}, str(tmp_path), keep="cat-zoom-a") == {
        "cat-zoom-a": "cat-zoom-a",
        "cat-zoom-a.mp4": "cat-zoom-a.mp4",
    }


def _zoom(tmp_path, name, layer="inception_4c/output", complete=False, state=True):
    d = tmp_path / name
    d.mkdir()
    (d / "zoom.json").write_text(
        json.dumps({"layer": layer, "frames": 5, "scale": 0.05, "seed": 3, "complete": complete})
    )
    if state:
        (d / ".resume.npz").write_bytes(b"x")
    return d


def test_resume_finds_the_newest_unfinished_zoom_of_the_source(tmp_path):
    out = str(tmp_path)
    with pytest.raises(UsageError, match="no unfinished zoom of cat"):
        find_resume(out, "cat.jpg")
    _zoom(tmp_path, "cat-zoom-inception_4c-output", complete=True, state=False)
    a = _zoom(tmp_path, "cat-zoom-inception_4c-output-2")
    b = _zoom(tmp_path, "cat-zoom-conv1", layer="conv1")
    os.utime(str(a / ".resume.npz"), (1000, 1000))
    _zoom(tmp_path, "dog-zoom-conv1", layer="conv1")
    assert find_resume(out, "https://x.org/p/cat.jpg?x=1") == "cat-zoom-conv1"
    assert find_resume(out, "pics/cat.png", layer="inception_4c/output") == "cat-zoom-inception_4c-output-2"
    assert find_resume(out, str(a)) == a.name
    with pytest.raises(UsageError, match="complete"):
        find_resume(out, str(tmp_path / "cat-zoom-inception_4c-output"))
    assert b.exists()


def test_resume_refuses_options_that_differ_from_the_zooms_own(tmp_path):
    d = _zoom(tmp_path, "cat-zoom-x")
    check_resume(str(d), {"frames": 5, "scale": 0.05, "layer": None, "seed": None})
    with pytest.raises(UsageError, match="made with --frames 5, not 7"):
        check_resume(str(d), {"frames": 7})
    with pytest.raises(UsageError, match="made with LAYER inception_4c/output"):
        check_resume(str(d), {"layer": "conv1"})


def test_stem_of_matches_the_fetchers_names():
    assert stem_of("https://example.org/a%20b/sky%201.jpg") == "sky_1"
    assert stem_of("~/Pictures/cat.png") == "cat"


def test_resume_of_a_broken_zoom_folder_says_what_is_wrong(tmp_path):
    """A zoom.json that cannot be read was called complete ("nothing to resume")."""
    folder = tmp_path / "m-zoom-conv1"
    folder.mkdir()
    (folder / "zoom.json").write_text("{bad")
    with pytest.raises(UsageError, match="its zoom.json cannot be read"):
        find_resume(str(tmp_path), str(folder))
    (folder / "zoom.json").write_text(json.dumps({"layer": "conv1", "complete": False}))
    with pytest.raises(UsageError, match=r"\.resume\.npz \(the state after its last frame\) is missing"):
        find_resume(str(tmp_path), str(folder))
    (folder / "zoom.json").write_text(json.dumps({"layer": "conv1", "complete": True}))
    with pytest.raises(UsageError, match="is complete: there is nothing to resume"):
        find_resume(str(tmp_path), str(folder))
