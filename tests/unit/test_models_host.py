"""ddctl's side of objectives and models: the LAYER grammar (held to the engine's answers),
model folders, known-model downloads (served on 127.0.0.1), the engine's argv."""

import hashlib
import io
import json
import os
import tarfile

import pytest

from ddctl import models, objective
from ddctl.errors import DdctlError, UsageError
from ddctl.run.options import DreamOptions, engine_command
from engine import objectives as engine_objectives

SPECS = [
    "inception_4c/output",
    "inception_4c/output:97",
    "inception_4c/output:112,97",
    "a*0.5+b/c:1,2*2",
    "a:",
    "a:x",
    "a:-1",
    "a*0",
    "a*-2",
    "a*inf",
    "a+",
    "a**2",
    "a:1*2*3",
    "",
    " ",
]


@pytest.mark.parametrize("spec", SPECS)
def test_host_and_engine_read_the_grammar_alike(spec):
    try:
        engine = [(t.blob, t.channels, t.weight) for t in engine_objectives.parse(spec).terms]
    except engine_objectives.ObjectiveError:
        engine = None
    try:
        host = [(t.blob, t.channels, t.weight) for t in objective.parse(spec)]
    except UsageError:
        host = None
    assert host == engine


def test_host_check_names_layers_and_channels():
    rows = [{"name": "a", "channels": 8, "stride": 2}, {"name": "b/c", "channels": 4, "stride": 4}]
    objective.check(objective.parse("a:7+b/c*2"), rows)
    with pytest.raises(UsageError, match=r"channel 8 is out of range: a has 8 channels \(0 to 7\)"):
        objective.check(objective.parse("a:8"), rows)
    with pytest.raises(UsageError, match="unknown layer 'x': choose one of a, b/c"):
        objective.check(objective.parse("a+x"), rows)


def test_engine_command_carries_model_and_guide(tmp_path):
    m = models.Model("mine", str(tmp_path), "deploy.prototxt", "w.caffemodel", (104.0, 117.0, 123.5), "l")

    class Guide:
        filename = "g.png"

    cmd = engine_command("/input/p.png", "p", DreamOptions(layer="l:3", model=m, guide=Guide()))
    text = " ".join(cmd)
    assert "--prototxt /input/ddctl-model/deploy.prototxt --weights /input/ddctl-model/w.caffemodel" in text
    assert "--mean 104,117,123.5" in text and "--guide /input/ddctl-guide/g.png" in text
    plain = engine_command("/input/p.png", "p", DreamOptions())
    assert plain[plain.index("--") + 1 :][:2] == ["/input/p.png", "inception_4c/output"]
    assert cmd.index("--guide") < cmd.index("--")  # options before `--`, positionals after
    assert "--prototxt" not in engine_command("/input/p.png", "p", DreamOptions())


# --- folders --------------------------------------------------------------------------------


def test_model_folders(tmp_path):
    d = tmp_path / "net"
    d.mkdir()
    with pytest.raises(UsageError, match="has no deploy.prototxt"):
        models.from_folder(str(d))
    (d / "deploy.prototxt").write_text("name: 'x'")
    with pytest.raises(UsageError, match="holds no .caffemodel"):
        models.from_folder(str(d))
    (d / "a.caffemodel").write_bytes(b"1")
    (d / "b.caffemodel").write_bytes(b"2")
    with pytest.raises(UsageError, match="2 .caffemodel files"):
        models.from_folder(str(d))
    (d / "b.caffemodel").unlink()
    with pytest.raises(UsageError) as e:  # b"1": not a Caffe NetParameter, said before Docker
        models.from_folder(str(d))
    assert e.value.message.startswith(
        "the model net does not load: a.caffemodel is not a Caffe weights file ("
    )
    (d / "a.caffemodel").write_bytes(b"\x0a\x01x" + b"\xa2\x06\x03\x0a\x01d")  # name "x", one layer
    m = models.from_folder(str(d))
    assert (m.prototxt, m.weights, m.mean, m.layer) == ("deploy.prototxt", "a.caffemodel", None, None)
    (d / "ddctl-model.json").write_text(json.dumps({"mean": [1, 2, 3], "layer": "conv9"}))
    m = models.from_folder(str(d))
    assert (m.mean, m.layer) == ((1.0, 2.0, 3.0), "conv9")
    (d / "ddctl-model.json").write_text(json.dumps({"mean": [1, 2]}))
    with pytest.raises(UsageError, match="three numbers"):
        models.from_folder(str(d))
    with pytest.raises(UsageError, match="no such folder"):
        models.resolve(str(tmp_path / "nothing"))
    with pytest.raises(UsageError, match="unknown model 'vgg'"):
        models.resolve("vgg")
    assert models.resolve(None) is None and models.resolve("bvlc_googlenet") is None


# --- downloads ------------------------------------------------------------------------------


@pytest.fixture
def server(http_server, monkeypatch, tmp_path):
    """The known models' mirror: tests/conftest.py's server, its routes set by each test."""
    srv = http_server()
    monkeypatch.setenv("DDCTL_MODEL_MIRROR", srv.url)
    monkeypatch.setenv("DDCTL_CACHE_DIR", str(tmp_path / "cache"))
    return srv


def _tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_an_archive_model_is_checked_staged_and_committed(server, monkeypatch):
    archive = _tar({"g/deploy_places205.protxt": b"name: 'g'", "g/g_iter_1.caffemodel": b"W" * 100000})
    known = models.KnownModel(
        "toy", "a toy", "http://x.invalid/m/toy.tar.gz", hashlib.sha1(archive).hexdigest(), (1, 2, 3), "l"
    )
    server.routes = {"/toy/toy.tar.gz": archive}
    seen = []
    m = models.fetch_known(known, lambda what, done, total: seen.append((what, done, total)))
    assert m.staged and os.path.basename(m.folder).startswith(".staging-toy-")
    assert seen[-1] == ("download.tar.gz", len(archive), len(archive))
    assert open(os.path.join(m.folder, "deploy.prototxt"), "rb").read() == b"name: 'g'"
    assert models.cached("toy") is None  # not before the image accepted it
    m.commit()
    assert models.cached("toy").weights == "toy.caffemodel"
    assert os.listdir(models.models_dir()) == ["toy"]


def test_a_wrong_sha1_or_a_404_keeps_nothing(server):
    known = models.KnownModel(
        "toy",
        "a toy",
        "http://x.invalid/toy.caffemodel",
        "0" * 40,
        (1, 2, 3),
        "l",
        "http://x.invalid/deploy.prototxt",
    )
    server.routes = {"/toy/toy.caffemodel": b"weights", "/toy/deploy.prototxt": b"name: 'x'"}
    with pytest.raises(DdctlError, match="not the published 0000000000"):
        models.fetch_known(known)
    assert os.listdir(models.models_dir()) == []
    server.routes = {}
    with pytest.raises(DdctlError, match="answered HTTP 404"):
        models.fetch_known(known)
    assert os.listdir(models.models_dir()) == []
    unpublished = models.KnownModel(
        "toy",
        "t",
        "http://x.invalid/toy.caffemodel",
        None,
        (1, 2, 3),
        "l",
        "http://x.invalid/deploy.prototxt",
    )
    server.routes = {"/toy/toy.caffemodel": b"weights", "/toy/deploy.prototxt": b"name: 'x'"}
    m = models.fetch_known(unpublished)
    assert m.sources["weights"]["sha1"] == hashlib.sha1(b"weights").hexdigest()
    m.discard()
    assert os.listdir(models.models_dir()) == []


def test_urls_are_shown_without_secrets():
    assert (
        models._redact("https://u:secret@h.example:8443/p/m.caffemodel?token=abc")
        == "https://h.example:8443/p/m.caffemodel"
    )


# --- ddctl sheet's cells, read on the host as the engine reads them ------------------------

CELLS = [
    ("all", None),
    ("a,b/c", None),
    ("", None),
    (" , ", None),
    (None, "a:0-15"),
    (None, "a:3,7,12-14"),
    (None, "a:0-3,0-3"),
    (None, "x"),
    (None, "a:"),
    (None, ":1"),
    (None, "a:5-2"),
    (None, "a:x"),
    (None, "a:0-256"),
    (None, "a:0-255"),
    (None, "a:0-200,100-300"),
]


@pytest.mark.parametrize("layers, channels", CELLS)
def test_host_and_engine_read_the_sheets_cells_alike(layers, channels):
    """What the host refuses (one line, before Docker) the engine refuses too, and the
    other way round (the engine against a net that has every layer named, wide enough)."""
    from engine import sheet as engine_sheet

    class Info:
        def __init__(self, name):
            self.name, self.channels = name, 10000

    try:
        engine_sheet.cells_of(layers, channels, [Info("a"), Info("b/c")])
        engine = True
    except ValueError:
        engine = False
    try:
        objective.check_cells(layers, channels)
        host = True
    except UsageError:
        host = False
    assert host == engine


def test_sheet_refuses_bad_cells_before_docker(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    Image.new("RGB", (40, 30)).save(tmp_path / "cat.png")
    for args, words in [
        (["--layers", ""], "--layers is all or a comma-separated list"),
        (["--channels", "inception_4c/output:5-2"], "goes backwards; write 2-5"),
        (["--layers", "3,4"], "--layers '3' is a number"),
        (["--layers", "all", "--image", "Bad Tag"], "--image 'Bad Tag' is not a valid image name"),
    ]:
        r = subprocess.run(
            [sys.executable, "-m", "ddctl", "sheet", "cat.png", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=dict(os.environ, DOCKER_HOST="unix:///nonexistent"),
            timeout=60,
        )
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and words in lines[0], r.stderr


def test_a_cache_that_is_a_file_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("DDCTL_CACHE_DIR", str(tmp_path / "afile"))
    with pytest.raises(UsageError) as e:
        models.resolve("googlenet_places365")
    assert e.value.message == (
        f"Cannot keep models in {tmp_path}/afile/models (Not a directory): "
        "set DDCTL_CACHE_DIR to a folder you can write."
    )


def test_a_misspelt_layer_is_told_its_likely_name_on_both_sides():
    from engine import objectives as eo

    class Info:
        def __init__(self, name, channels):
            self.name, self.channels, self.stride = name, channels, 1

    infos = [Info("inception_4c/output", 512), Info("inception_3b/output", 480), Info("conv1", 64)]
    rows = [{"name": i.name, "channels": i.channels, "stride": 1} for i in infos]
    for spec, hint in [("inception_4c/outptu", " (did you mean inception_4c/output?)"), ("nosuch", "")]:
        with pytest.raises(UsageError) as host:
            objective.check(objective.parse(spec), rows)
        with pytest.raises(eo.ObjectiveError) as engine:
            eo.check(eo.parse(spec), infos)
        want = f"unknown layer {spec!r}{hint}: choose one of inception_4c/output, inception_3b/output, conv1"
        assert host.value.message == str(engine.value) == want
