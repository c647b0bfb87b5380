"""What a user sees from the CLI without any daemon."""

import json
import os
import subprocess
import sys

import pytest

from ddctl import __version__
from ddctl.cli import main


def ddctl(*args, env=None, cwd=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "ddctl", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=60,
    )


def test_version_and_help_list_the_commands():
    r = ddctl("--version")
    assert r.returncode == 0 and __version__ in r.stdout
    r = ddctl("--help")
    for cmd in ("doctor", "build", "run", "layers"):
        assert cmd in r.stdout


@pytest.mark.parametrize("command", ["build", "layers"])
def test_a_daemon_that_is_not_there_is_one_sentence_without_traceback(command):
    r = ddctl(command, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert r.returncode != 0
    assert "Traceback" not in r.stderr + r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert "unix:///nonexistent/docker.sock" in lines[0] and "ddctl doctor" in lines[0]


def test_debug_shows_the_traceback():
    r = ddctl("--debug", "layers", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_no_command_prints_help_and_fails():
    assert main([]) == 2


NO_DAEMON = {"DOCKER_HOST": "unix:///nonexistent"}


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "missing.jpg"], "missing.jpg: no such file"),
        (["run", "x.png", "badlayer", "0"], "must be a whole number from 1 to 100000, not '0'"),
        (["build", "--tag", "Bad Tag!!"], "is not a valid image name"),
        (["run", "--image", "Bad Tag!!", "x.png"], "is not a valid image name"),
        (["layers", "--image", "Bad Tag!!"], "is not a valid image name"),
        (["zoom", "x.png", "--image", "Bad Tag!!"], "is not a valid image name"),
        (["swarm", "run", "x.png", "--image", "Bad Tag!!"], "is not a valid image name"),
        (["build", "--weights-url", "http://127.0.0.1:9/w"], "go together"),
        (["build", "--weights", "/no/such.caffemodel"], "no such file"),
        (["doctor", "profile", "--path", "relative/profile"], "not an absolute path"),
    ],
)
def test_usage_errors_are_found_before_docker_is_asked(tmp_path, args, words):
    r = ddctl(*args, env=NO_DAEMON, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and "Docker" not in r.stderr and "Traceback" not in r.stderr


def test_a_good_picture_then_says_docker_is_not_answering(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30)).save(tmp_path / "cat.png")
    r = ddctl("run", str(tmp_path / "cat.png"), "-o", str(tmp_path / "out"), env=NO_DAEMON)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ddctl: Docker is not answering at unix:///nonexistent"), r.stderr
    assert "Traceback" not in r.stderr


def test_version_works_where_grp_and_pwd_do_not_exist():
    code = (
        "import sys; sys.modules['grp'] = sys.modules['pwd'] = None\n"
        "from ddctl.cli import main\n"
        "main(['--version'])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"ddctl {__version__}" in r.stdout, r.stderr


def test_options_may_come_between_the_positionals():
    from ddctl.cli import build_parser, parse_args

    parser = build_parser()
    args = parse_args(
        parser, ["run", "photo.jpg", "--seed", "7", "inception_4b/output", "20", "-o", "out", "3"]
    )
    assert (args.source, args.layer, args.iterations, args.octaves) == (
        "photo.jpg",
        "inception_4b/output",
        20,
        3,
    )
    assert args.seed == 7 and args.output_dir == "out" and args.command == "run" and args.debug is False
    args = parse_args(parser, ["--debug", "sheet", "sky.jpg", "--layers", "all", "10", "4"])
    assert (args.iterations, args.octaves, args.layers, args.debug) == (10, 4, "all", True)


def test_a_word_left_over_is_still_a_usage_error(tmp_path):
    r = ddctl(
        "run",
        "photo.jpg",
        "inception_4c/output",
        "1",
        "1",
        "extra",
        env={"DOCKER_HOST": "unix:///nonexistent"},
    )
    assert r.returncode == 2 and "unrecognized arguments: extra" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["run", "cat.png", "2", "2"],  # ITERATIONS where LAYER goes
        ["run", "cat.png", "inception_4c/output*1+1.5"],  # a number inside a mix
        ["run", "pics", "20"],  # a folder: the batch path checks it too
        ["zoom", "cat.png", "10", "3"],
        ["swarm", "run", "cat.png", "--layer", "3"],
    ],
)
def test_a_number_as_layer_is_refused_before_docker_in_one_line(tmp_path, args):
    from PIL import Image

    Image.new("RGB", (40, 30)).save(tmp_path / "cat.png")
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "pics" / "a.png")
    r = ddctl(*args, env=NO_DAEMON, cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "is a number, not a layer" in lines[0] and "`ddctl layers`" in lines[0]
    assert "Docker" not in r.stderr and not (tmp_path / "dreams").exists()
    if args[0] != "swarm":
        assert "LAYER comes before ITERATIONS" in lines[0]


def test_a_folder_model_may_name_a_numeric_blob():
    """Converted nets have blobs like "123": with --model DIR the net's own list decides."""
    from ddctl import objective
    from ddctl.errors import UsageError

    assert [t.blob for t in objective.check_spec("123:4", "./nets/converted")] == ["123"]
    for model in (None, "googlenet_places365"):
        with pytest.raises(UsageError, match="is a number"):
            objective.check_spec("123:4", model)
    with pytest.raises(UsageError, match="is not a layer name"):
        objective.check_spec("--output-dir=/x")


def test_build_refuses_a_weights_file_that_is_not_caffe_weights_before_docker(tmp_path):
    (tmp_path / "notes.txt").write_text("not weights\n")
    r = ddctl("build", "--weights", "notes.txt", env=NO_DAEMON, cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "notes.txt is not a Caffe model (.caffemodel)" in lines[0] and "Docker" not in r.stderr


def test_models_takes_image_like_the_other_commands():
    r = ddctl("models", "--image", "Bad Tag!!", env=NO_DAEMON)
    assert r.returncode == 2 and "--image 'Bad Tag!!' is not a valid image name" in r.stderr
    r = ddctl("models", "--image", "mydream:1", env=NO_DAEMON)  # asks Docker about it
    assert r.returncode == 1 and r.stderr.startswith("ddctl: Docker is not answering"), r.stderr
    r = ddctl("models", "--json", env=NO_DAEMON)  # without --image: no Docker needed
    assert r.returncode == 0 and "image" not in json.loads(r.stdout)


@pytest.mark.parametrize(
    "option, value",
    [
        ("--seed", "-5"),
        ("--seed", "99999999999"),
        ("--iterations", "999999"),
        ("--step-size", "inf"),
        ("--octaves", "0"),
    ],
)
def test_swarm_run_checks_numbers_against_the_engines_limits(tmp_path, option, value):
    """As `ddctl run` does (ddctl/limits.py): before, --seed -5 reached the swarm's tasks."""
    r = ddctl("swarm", "run", "x.png", option, value, env=NO_DAEMON, cwd=tmp_path)
    assert r.returncode == 2 and f"argument {option}: must be" in r.stderr and "Docker" not in r.stderr, (
        r.stderr
    )


def test_a_fetched_urls_secrets_are_not_on_the_input_line(http_server, tmp_path):
    """The picture is fetched for real (user:password and a token in the URL); the `input:`
    line and the Docker error after it show neither, only the redacted address."""
    from io import BytesIO

    from PIL import Image

    png = BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(png, "PNG")
    server = http_server({"/cat.png?token=t0ps3cret": png.getvalue()})
    url = server.url.replace("http://", "http://alice:s3cr3tpw@") + "/cat.png?token=t0ps3cret"
    r = ddctl("run", url, "-o", str(tmp_path), env=NO_DAEMON)
    shown = r.stdout + r.stderr
    assert r.returncode == 1 and "Docker is not answering" in r.stderr, shown
    assert "input: http://***@127.0.0.1:" in r.stderr and "/cat.png?token=*** (64x48 PNG)" in r.stderr
    assert "s3cr3tpw" not in shown and "t0ps3cret" not in shown and "alice" not in shown


def test_a_guide_is_fetched_and_verified_like_the_source(http_server, tmp_path):
    """--guide URL: fetched and verified on the host before Docker is asked; one that is not a
    picture is one line naming --guide, exit 2; a good one is shown (without its secret)."""
    from io import BytesIO

    from PIL import Image

    png = BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 90)).save(png, "PNG")
    server = http_server(
        {
            "/guide.png?sig=s3cr3t": png.getvalue(),
            "/page.html": (200, {"Content-Type": "text/html"}, b"<html><body>hi</body></html>"),
        }
    )
    cat = tmp_path / "cat.png"
    Image.new("RGB", (64, 48)).save(str(cat))
    r = ddctl("run", str(cat), "--guide", server.url + "/page.html", "-o", str(tmp_path), env=NO_DAEMON)
    lines = [x for x in r.stderr.splitlines() if x.startswith("ddctl:")]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("ddctl: --guide: "), r.stderr
    assert "Docker" not in r.stderr and "Traceback" not in r.stderr

    r = ddctl(
        "run", str(cat), "--guide", server.url + "/guide.png?sig=s3cr3t", "-o", str(tmp_path), env=NO_DAEMON
    )
    assert r.returncode == 1 and "Docker is not answering" in r.stderr, r.stderr
    assert "guide: http://127.0.0.1:" in r.stderr and "/guide.png?sig=*** (40x30 PNG)" in r.stderr
    assert "s3cr3t" not in r.stderr
