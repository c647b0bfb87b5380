"""Issue 9: every number is checked on the host with the engine's own limits.

Tests may import both sides (ddctl and engine never import each other): the two tables
must be equal, and ddctl must refuse on the host what the engine would refuse.
"""

import io
import json
import os
import subprocess
import sys

import pytest

from ddctl import limits as host
from engine import cli as engine_cli
from engine import limits as engine

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from test_engine_fakenet import FakeNet  # noqa: E402


def test_the_two_limits_tables_are_equal():
    assert host.LIMITS == engine.LIMITS


def ddctl(*args):
    # an address nobody answers: a refusal must come before any download or daemon
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent/docker.sock")
    return subprocess.run(
        [sys.executable, "-m", "ddctl", "run", "http://127.0.0.1:9/x.jpg", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


BAD = [
    (["--octave-scale", "nan"], "--octave-scale"),
    (["--octave-scale", "inf"], "--octave-scale"),
    (["--octave-scale", "0.5"], "--octave-scale"),
    (["--octave-scale", "101"], "--octave-scale"),
    (["--step-size", "nan"], "--step-size"),
    (["--step-size", "inf"], "--step-size"),
    (["--step-size", "0"], "--step-size"),
    (["--jitter", "100001"], "--jitter"),
    (["--seed", "-1"], "--seed"),
    (["--seed", "99999999999"], "--seed"),
    (["inception_4c/output", "200000"], "ITERATIONS"),
    (["inception_4c/output", "2", "101"], "OCTAVES"),
    (["--max-size", "-5"], "--max-size"),
]


@pytest.mark.parametrize("args,label", BAD)
def test_ddctl_refuses_on_the_host_in_one_line(args, label):
    r = ddctl(*args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert f"argument {label}: must be" in last and "not '" in last


ENGINE_FORM = {
    "--octave-scale": "octave_scale",
    "ITERATIONS": "iterations",
    "OCTAVES": "octaves",
}


@pytest.mark.parametrize("args,label", BAD)
def test_what_the_host_refuses_the_engine_refuses_too(args, label, tmp_path):
    opts = [a for a in args if a.startswith("--")] and args
    if label in ENGINE_FORM or not opts:
        # positionals in the engine's order: SOURCE LAYER ITERATIONS OCTAVES OCTAVE_SCALE
        pos = {"iterations": "2", "octaves": "2", "octave_scale": "1.4"}
        if label == "--octave-scale":
            pos["octave_scale"] = args[1]
        elif label == "ITERATIONS":
            pos["iterations"] = args[1]
        elif label == "OCTAVES":
            pos["octaves"] = args[2]
        argv = ["--", "x.jpg", "conv1", pos["iterations"], pos["octaves"], pos["octave_scale"]]
    else:
        argv = args + ["--", "x.jpg"]
    out = io.StringIO()
    code = engine_cli.main(
        ["--output-dir", str(tmp_path), "--progress", "json"] + argv,
        net_factory=lambda p, w: FakeNet(),
        stdout=out,
        stderr=io.StringIO(),
    )
    assert code == 2 and json.loads(out.getvalue().splitlines()[-1])["code"] == "bad_input"


@pytest.mark.parametrize("value", ["0", "1", "1280", "1000000"])
def test_max_size_zero_means_full_size_on_the_host(value):
    assert host.check("max_size", value, "--max-size", zero_means_none=True) == int(value)


@pytest.mark.parametrize("layer", ["--output-dir=/images/x", "-x", "a b", ""])
def test_a_layer_that_reads_as_an_option_is_refused_on_the_host(layer):
    with pytest.raises(ValueError, match="not a layer name"):
        host.check_layer_name(layer)


def test_ddctl_run_refuses_an_option_as_layer_before_anything():
    r = subprocess.run(
        [sys.executable, "-m", "ddctl", "run", "--", "x.jpg", "--output-dir=/images/X", "2", "2"],
        capture_output=True,
        text=True,
        env=dict(os.environ, DOCKER_HOST="unix:///nonexistent/docker.sock"),
        timeout=60,
    )
    assert r.returncode == 2 and "is not a layer name" in r.stderr and "Traceback" not in r.stderr
