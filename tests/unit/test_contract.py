"""Contract tests: ddctl and the engine agree on README "Contracts between the parts".

ddctl never imports the engine and the engine never imports ddctl; only these tests import
both (both are importable on the host; the engine runs on the numpy FakeNet). Each test
puts one side's real output through the other side's real code, so that a change of a
default, of the naming rule or of an event's shape on one side alone fails here.
"""

import io
import os
import random
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_engine_fakenet import FakeNet  # noqa: E402

from ddctl.cli import build_parser  # noqa: E402
from ddctl.commands.run import options_of  # noqa: E402
from ddctl.errors import DdctlError, UsageError  # noqa: E402
from ddctl.fetch import safe_stem  # noqa: E402
from ddctl.layers import parse_layers  # noqa: E402
from ddctl.run import container, naming, options, progress  # noqa: E402
from ddctl.run.options import ENGINE_DEFAULTS, DreamOptions, engine_command  # noqa: E402
from engine import cli as engine_cli  # noqa: E402

# The fields of each event the README promises (ddctl reads them).
EVENT_FIELDS = {
    "start": {"source", "layer", "width", "height", "octaves", "iterations", "steps_total", "seed"},
    "step": {"step", "steps_total", "octave", "iteration", "width", "height", "elapsed"},
    "saved": {"kind", "path"},
    "done": {"path", "elapsed"},
    "error": {"code", "message"},
}


def engine(argv, net=FakeNet):
    """Run the engine's real command line on the fake net: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = engine_cli.main(argv, net_factory=lambda p, w: net(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def pic(tmp_path):
    """tmp_path/cat.png, 64x48: the folder plays the container's /images."""
    a = np.random.RandomState(0).randint(0, 256, (48, 64, 3)).astype(np.uint8)
    Image.fromarray(a).save(str(tmp_path / "cat.png"))
    return tmp_path


# --- defaults ----------------------------------------------------------------------------


def test_ddctl_defaults_are_the_engine_s():
    a = engine_cli.parse_args(["x.png"])
    assert {k: getattr(a, k) for k in ENGINE_DEFAULTS} == ENGINE_DEFAULTS
    assert options.IMAGES == a.output_dir == engine_cli.DEFAULTS["output_dir"]
    o = DreamOptions()
    assert (o.layer, o.iterations, o.octaves, o.octave_scale) == (
        a.layer,
        a.iterations,
        a.octaves,
        a.octave_scale,
    )
    # What `ddctl run SOURCE` asks for when given nothing else.
    r = options_of(build_parser().parse_args(["run", "x.png"]))  # LAYER None: the model's, else this
    assert (r.layer, r.iterations, r.octaves, r.octave_scale) == (
        a.layer,
        a.iterations,
        a.octaves,
        a.octave_scale,
    )
    assert r.step_size is None and r.jitter is None  # left to the engine: its defaults apply


# --- the engine's command line -------------------------------------------------------------


@pytest.mark.parametrize(
    "opts",
    [
        DreamOptions(),
        DreamOptions(layer="inception_3b/5x5_reduce", iterations=19, octaves=4, octave_scale=1.25),
        DreamOptions(step_size=0.75, jitter=0, seed=0, save_steps=True, max_size=160),
        DreamOptions(layer="conv1", iterations=1, octaves=1, octave_scale=2, step_size=2, seed=4294967295),
    ],
    ids=["defaults", "positionals", "options", "edges"],
)
def test_the_engine_reads_ddctl_s_argv_as_ddctl_means_it(opts):
    a = engine_cli.parse_args(engine_command("/input/cat.jpg", "cat", opts))
    assert (a.source, a.name, a.progress) == ("/input/cat.jpg", "cat", "json")
    assert (a.layer, a.iterations, a.octaves) == (opts.layer, opts.iterations, opts.octaves)
    assert a.octave_scale == opts.octave_scale
    assert a.step_size == (ENGINE_DEFAULTS["step_size"] if opts.step_size is None else opts.step_size)
    assert a.jitter == (ENGINE_DEFAULTS["jitter"] if opts.jitter is None else opts.jitter)
    assert (a.seed, a.save_steps, a.max_size) == (opts.seed, opts.save_steps, opts.max_size)
    assert a.output_dir == options.IMAGES and not a.list_layers


# --- events ---------------------------------------------------------------------------------


def chunks_of(text, seed=0):
    """The bytes of text cut at random places, as a container's log stream arrives."""
    data, rng, out, i = text.encode(), random.Random(seed), [], 0
    while i < len(data):
        n = rng.randint(1, 40)
        out.append(data[i : i + n])
        i += n
    return out


class LogContainer:
    """A container whose stdout is what the engine really printed (for container.follow)."""

    def __init__(self, stdout):
        self.stdout = stdout

    def start(self):
        pass

    def logs(self, stream=False, follow=False, stdout=True, stderr=True, tail="all"):
        return iter(chunks_of(self.stdout))


def follow_engine(stdout, code=0):
    """ddctl's reading of the engine's stdout: (emitted (kind, data) list, Outcome)."""
    seen, outcome = [], container.Outcome()
    container.follow(LogContainer(stdout), lambda kind, data: seen.append((kind, data)), outcome)
    outcome.code = code
    return seen, outcome


def test_the_engine_s_event_lines_survive_ddctl_s_splitter_and_parser(pic):
    code, out, err = engine(["cat.png", "conv2", "3", "2", "--save-steps", "--output-dir", str(pic)])
    assert code == 0, err
    splitter = progress.LineSplitter()
    lines = [line for chunk in chunks_of(out) for line in splitter.feed(chunk)] + splitter.close()
    assert lines == out.splitlines()
    events = [progress.parse_engine_line(line) for line in lines]
    assert all(events), lines
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("step") == 6
    for e in events:
        assert EVENT_FIELDS[e["event"]] <= set(e), e


def test_ddctl_follows_a_real_dream_to_its_final_picture(pic):
    code, out, _ = engine(["cat.png", "conv2", "3", "2", "--save-steps", "--output-dir", str(pic)])
    seen, outcome = follow_engine(out, code)
    assert outcome.failure() is None and outcome.other == [] and outcome.error is None
    assert os.path.isfile(outcome.done["path"])
    assert outcome.saved[-1] == outcome.done["path"] and len(outcome.saved) == 7  # 6 steps + final
    assert all(os.path.isfile(p) for p in outcome.saved)
    assert [k for k, _ in seen if k not in ("saved",)] == ["start"] + ["step"] * 6 + ["done"]


def test_the_eta_model_reads_the_engine_s_steps_to_the_end(pic):
    code, out, _ = engine(["cat.png", "conv2", "3", "3", "1.3", "--output-dir", str(pic)])
    events = [progress.parse_engine_line(line) for line in out.splitlines()]
    start, steps = events[0], [e for e in events if e["event"] == "step"]
    model = progress.DreamProgress(start, 1.3)
    assert (model.octaves, model.iterations, model.steps_total) == (3, 3, 9)
    fractions = []
    for e in steps:
        model.update(e)
        assert (model.step, model.octave, model.iteration) == (e["step"], e["octave"], e["iteration"])
        fractions.append(model.fraction)
    assert fractions == sorted(fractions) and 0 < fractions[0] < 1 / 9  # the small octave is cheap
    assert model.fraction == 1.0 and model.eta == 0.0


@pytest.mark.parametrize(
    "argv, code_name",
    [
        (["cat.png", "inception_9z/output", "1", "1"], "unknown_layer"),
        (["cat.png", "conv3", "1", "9"], "too_many_octaves"),
        (["missing.png", "conv1", "1", "1"], "bad_input"),
    ],
)
def test_an_engine_refusal_is_ddctl_s_usage_error_with_the_engine_s_words(pic, argv, code_name):
    code, out, _ = engine([*argv, "--progress", "json", "--output-dir", str(pic)])
    assert code == 2
    _seen, outcome = follow_engine(out, code)
    assert outcome.error["code"] == code_name
    failure = outcome.failure()
    assert isinstance(failure, UsageError) and failure.exit_code == 2
    assert failure.message == " ".join(outcome.error["message"].split())


def test_an_engine_failure_is_ddctl_s_exit_1_with_the_engine_s_words(pic):
    def broken():
        raise engine_cli.Failure("caffe is not available here: run the engine inside the ddctl image")

    code, out, _ = engine(
        ["cat.png", "conv1", "1", "1", "--progress", "json", "--output-dir", str(pic)], broken
    )
    assert code == 1
    failure = follow_engine(out, code)[1].failure()
    assert type(failure) is DdctlError and failure.exit_code == 1
    assert "caffe is not available here" in failure.message


def test_ddctl_reads_the_engine_s_layer_list():
    code, out, _ = engine(["--list-layers", "--progress", "json"])
    assert code == 0
    assert parse_layers(out) == [
        {"name": layer.name, "channels": layer.channels, "stride": layer.stride}
        for layer in FakeNet().layers()
    ]


# --- files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "cat.png",
        "my photo (1).png",
        "été à Paris.png",
        "x+y=z.png",
        "..hidden.png",
        "a" * 100 + ".png",
        "雪.png",
        "Müller-Straße.jpg",
        "Mu\u0308ller.png",  # a Mac's decomposed ü
        "हिन्दी.png",  # letters and combining marks
        "a" * 59 + " b.png",  # cut where a '_' would end it
        "雪" * 70 + ".png",  # 3 bytes a letter: cut at 120 bytes
    ],
)
def test_the_engine_keeps_ddctl_s_stem_and_names_the_picture_as_ddctl_predicts(pic, name):
    stem = safe_stem(name)  # what ddctl passes as --name
    code, out, err = engine(["cat.png", "conv1", "2", "1", "--name", stem, "--output-dir", str(pic)])
    assert code == 0, err
    done = progress.parse_engine_line(out.splitlines()[-1])
    assert os.path.basename(done["path"]) == naming.final_stem(stem, "conv1", 2, 1) + ".png"


@pytest.mark.parametrize("layer", ["conv1", "conv1:3", "conv1:3,5*2+conv2*0.5"])
def test_an_objective_names_the_picture_as_ddctl_predicts(pic, layer):
    """A batch skips pictures whose result exists: ddctl must name it as the engine does."""
    code, out, err = engine(["cat.png", layer, "1", "1", "--output-dir", str(pic)])
    assert code == 0, err
    done = progress.parse_engine_line(out.splitlines()[-1])
    assert os.path.basename(done["path"]) == naming.final_stem("cat", layer, 1, 1) + ".png"


def test_a_guided_dream_names_the_picture_as_ddctl_predicts(pic):
    """A guided batch must not take an unguided result for its own (nor the other way)."""
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 30, 90)).save(str(pic / "guide.png"))
    code, out, err = engine(["cat.png", "conv2", "1", "1", "--guide", "guide.png", "--output-dir", str(pic)])
    assert code == 0, err
    done = progress.parse_engine_line(out.splitlines()[-1])
    assert os.path.basename(done["path"]) == naming.final_stem("cat", "conv2", 1, 1, guided=True) + ".png"
    assert naming.final_stem("cat", "conv2", 1, 1) + ".png" != os.path.basename(done["path"])


def test_the_free_name_rule_is_the_same_on_both_sides(pic):
    final = naming.final_stem("cat", "conv1", 1, 1)
    (pic / f"{final}-2-steps").mkdir()  # someone's steps folder claims -2
    for save_steps in (False, True, False, True):
        expected = naming.free_stem(str(pic), final, ".png")
        argv = ["cat.png", "conv1", "1", "1", "--output-dir", str(pic)] + (
            ["--save-steps"] if save_steps else []
        )
        code, out, err = engine(argv)
        assert code == 0, err
        done = progress.parse_engine_line(out.splitlines()[-1])
        assert os.path.basename(done["path"]) == expected + ".png"
        if save_steps:
            assert os.path.isdir(pic / (expected + naming.STEPS_SUFFIX))
    names = sorted(os.listdir(pic))
    assert f"{final}.png" in names and f"{final}-3.png" in names and f"{final}-4.png" in names


def test_copied_results_get_the_names_the_engine_would_have_given(tmp_path):
    """The archive copy (ddctl names the container's files) and the bind mount (the engine
    names them in the folder itself) give the same names."""
    host, box = tmp_path / "host", tmp_path / "box"
    for d in (host, box):
        d.mkdir()
        Image.new("RGB", (64, 48), (90, 120, 200)).save(str(d / "cat.png"))
    argv = ["cat.png", "conv1", "1", "1", "--save-steps", "--output-dir"]
    for _ in range(2):  # earlier runs left cat-conv1-i1-o1{,-2}.png and their steps
        assert engine([*argv, str(host)])[0] == 0
    mounted = tmp_path / "mounted"
    shutil.copytree(str(host), str(mounted))
    assert engine([*argv, str(box)])[0] == 0  # in a container's empty /images
    plan = naming.plan_extraction(set(os.listdir(box)) - {"cat.png"}, str(host))
    code, out, _ = engine([*argv, str(mounted)])  # the same run, bind-mounted
    done = progress.parse_engine_line(out.splitlines()[-1])
    final = os.path.basename(done["path"])
    assert plan["cat-conv1-i1-o1.png"] == final == "cat-conv1-i1-o1-3.png"
    assert plan["cat-conv1-i1-o1-steps"] == final[: -len(".png")] + naming.STEPS_SUFFIX


def test_ddctl_finds_the_engine_s_files_on_the_host():
    out = "/home/me/dreams"
    path = options.IMAGES + "/cat-conv1-i1-o1-steps/conv1-0-0.png"
    assert naming.host_path(path, out) == os.path.join(out, "cat-conv1-i1-o1-steps", "conv1-0-0.png")


@pytest.mark.parametrize(
    "mode, argv, where",
    [
        ("run", ["cat.png", "conv2", "2", "2"], {}),
        ("zoom", ["--mode", "zoom", "--frames", "2", "cat.png", "conv2", "2", "2"], {"frame": 1}),
        ("sheet", ["--mode", "sheet", "--layers", "conv1,conv2", "cat.png", "-", "2", "2"], {"cell": 1}),
    ],
)
def test_step_lines_are_the_same_in_every_mode(pic, monkeypatch, mode, argv, where):
    """Every mode's steps come from one helper (engine/cli.step_events): the same keys in the
    same order, counted from 1 within each dream, then the frame or cell; ddctl reads them."""
    from engine import zoom as engine_zoom

    clock = iter(range(10**6))
    monkeypatch.setattr(engine_cli.time, "monotonic", lambda: next(clock) * 0.25)
    monkeypatch.setattr(engine_zoom, "_ffmpeg", lambda: "/usr/bin/ffmpeg")
    monkeypatch.setattr(engine_zoom, "encode", lambda folder, *a, **k: [folder + ".mp4", folder + ".gif"])
    code, out, err = engine(["--output-dir", str(pic), "--progress", "json", "--seed", "3"] + argv)
    assert code == 0, err
    steps = [line for line in out.splitlines() if line.startswith('{"event": "step"')]
    assert len(steps) == 4 * (2 if where else 1)
    tail = "".join(f', "{k}": {v}' for k, v in where.items())
    fifth_or_first = steps[4] if where else steps[0]  # the second frame or cell starts at step 1
    assert fifth_or_first.startswith(
        '{"event": "step", "step": 1, "steps_total": 4, "octave": 0, "iteration": 0, '
        '"width": 46, "height": 34, "elapsed": '
    ) and fifth_or_first.endswith(tail + "}")
    ev = progress.parse_engine_line(steps[-1])
    assert ev is not None and (ev["step"], ev["steps_total"], ev["octave"], ev["iteration"]) == (4, 4, 1, 1)
