"""`ddctl build`, `ddctl run` and `ddctl layers` end to end: the real CLI, the real daemon,
the real image (untrained weights), pictures served on 127.0.0.1. Small sizes throughout."""

import hashlib
import io
import os
import re
import uuid

import pytest
from dockertest import TEST_LABELS_ENV
from dreamcli import containers_of, ddctl, env_for, interrupt_after, last_line, mandelbrot
from PIL import Image

SMALL = ["2", "2", "--max-size", "160"]  # ITERATIONS OCTAVES + a small working size


def picture(fmt="JPEG", mode="RGB", size=(200, 150), **kw):
    img = mandelbrot(size).convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def exif_rotated_jpeg():
    """A landscape 200x120 JPEG whose EXIF says 'rotate 90°': phones make these."""
    img = mandelbrot((200, 120))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


@pytest.fixture(scope="module")
def web(http_server):
    def typed(ctype, body):
        return (200, {"Content-Type": ctype}, body)

    return http_server(
        {
            "/photos/cat.jpg": typed("image/jpeg", picture()),
            "/big.jpg": typed("image/jpeg", picture(size=(900, 600))),
            "/page.jpg": typed(
                "image/jpeg", b"<!doctype html><html><body>Sign in to see this picture</body></html>"
            ),
            "/notes": typed("text/plain", b"these are not the pixels you are looking for\n"),
            "/noise.png": typed("image/png", os.urandom(5000)),
        }
    ).url


def assert_png_of_user(path):
    st = os.stat(path)
    assert st.st_uid == os.getuid() and st.st_gid == os.getgid(), (st.st_uid, st.st_gid)
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


# --- build ------------------------------------------------------------------------------


def test_build_through_the_cli_shows_steps_and_a_summary(docker_client, dream_image):
    name = "ddctl/deepdream:test-cli-" + uuid.uuid4().hex[:6]
    try:
        r = ddctl(
            "build",
            "--weights",
            "untrained",
            "--tag",
            name,
            env={"DDCTL_LABELS": TEST_LABELS_ENV},
            timeout=1500,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        assert re.search(r"^step 1/\d+: ", r.stderr, re.M), r.stderr[:2000]
        assert re.search(r"^step (\d+)/\1: ", r.stderr, re.M)  # the last step too
        assert f"built {name}" in r.stdout and re.search(r"size\s+\d+(\.\d)? [MG]B", r.stdout)
        assert re.search(r"weights\s+untrained", r.stdout)
        assert "untrained weights" in r.stderr and "Traceback" not in r.stderr
        labels = docker_client.images.get(name).labels
        assert labels["io.ddctl.weights"] == "untrained" and labels["io.ddctl.image"] == "deepdream"
    finally:
        try:
            docker_client.images.remove(name, noprune=True)
        except Exception:
            pass


def test_a_weights_download_failure_names_the_step_and_the_alternatives(docker_client, dream_image):
    name = "ddctl/deepdream:test-wfail-" + uuid.uuid4().hex[:6]
    r = ddctl(
        "build",
        "--tag",
        name,
        "--weights-url",
        "http://127.0.0.1:9/w.caffemodel",
        "--weights-sha1",
        "0123456789abcdef0123456789abcdef01234567",
        env={"DDCTL_LABELS": TEST_LABELS_ENV},
        timeout=900,
    )
    assert r.returncode == 1
    fail = [line for line in r.stderr.splitlines() if line.startswith("ddctl: ")]
    assert len(fail) == 1 and re.search(r"failed at step \d+/\d+ \(RUN ", fail[0]), r.stderr[-3000:]
    assert "http://127.0.0.1:9/w.caffemodel is unreachable" in fail[0] and "--weights untrained" in fail[0]
    assert "Last lines of that step:" in r.stderr and "Traceback" not in r.stderr
    assert not docker_client.images.list(name=name)


def test_build_with_clashing_weight_options_is_one_line(docker_client):
    r = ddctl("build", "--weights-url", "http://127.0.0.1:9/w.caffemodel")
    assert r.returncode == 2 and "go together" in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.strip()]) == 1


# --- run: pictures in, pictures out ----------------------------------------------------------


def test_a_url_is_dreamed_into_the_folder_as_the_caller(docker_client, dream_image, web, tmp_path, tag):
    out = tmp_path / "new" / "dreams"
    r = ddctl(
        "run",
        web + "/photos/cat.jpg",
        "inception_4c/output",
        *SMALL,
        "--image",
        dream_image,
        "-o",
        str(out),
        env=env_for(tag),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    path = last_line(r.stdout)
    assert path == str(out / "cat-inception_4c-output-i2-o2.png")
    assert assert_png_of_user(path) == (160, 120)
    # a local daemon: bind mount; as root the engine never runs as uid 0, files are copied out
    way = "bind-mounted" if os.getuid() != 0 else "ddctl runs as root: the engine runs as uid 1000"
    assert way in r.stderr and "step 4/4" in r.stderr and "ETA" in r.stderr
    assert "untrained weights" in r.stderr
    assert containers_of(docker_client, tag) == []


@pytest.mark.parametrize(
    "name, data, size",
    [
        ("phone.jpg", exif_rotated_jpeg(), (96, 160)),  # shown upright: portrait
        ("logo.png", picture("PNG", "RGBA", (160, 100)), (160, 100)),
        ("grey.jpg", picture("JPEG", "L", (160, 100)), (160, 100)),
        ("web.webp", picture("WEBP", "RGB", (160, 100)), (160, 100)),
    ],
    ids=["exif-rotated-jpeg", "rgba-png", "greyscale-jpeg", "webp"],
)
def test_pictures_users_really_have_dream(dream_image, tmp_path, tag, name, data, size):
    src = tmp_path / name
    src.write_bytes(data)
    r = ddctl(
        "run",
        str(src),
        "inception_3b/output",
        *SMALL,
        "--image",
        dream_image,
        "-o",
        str(tmp_path / "out"),
        env=env_for(tag),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    path = last_line(r.stdout)
    assert os.path.basename(path).startswith(os.path.splitext(name)[0] + "-inception_3b-output-i2-o2")
    assert assert_png_of_user(path) == size


@pytest.mark.parametrize(
    "route, words",
    [
        ("/missing.jpg", "answered 404 Not Found"),
        ("/page.jpg", "is an HTML page, not a picture"),
        ("/notes", "is text, not a picture"),
        ("/noise.png", "not a picture"),
        (None, "Cannot reach 127.0.0.1"),
    ],
)
def test_what_is_not_a_picture_fails_in_one_line(
    docker_client, dream_image, web, tmp_path, tag, route, words
):
    url = web + route if route else "http://127.0.0.1:9/cat.jpg"
    r = ddctl("run", url, "--image", dream_image, "-o", str(tmp_path / "out"), env=env_for(tag))
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0] and lines[0].startswith("ddctl: "), r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert containers_of(docker_client, tag) == []


def test_an_unknown_layer_is_the_engine_s_one_line(docker_client, dream_image, web, tmp_path, tag):
    r = ddctl(
        "run",
        web + "/photos/cat.jpg",
        "inception_9z/output",
        *SMALL,
        "--image",
        dream_image,
        "-o",
        str(tmp_path),
        env=env_for(tag),
    )
    assert r.returncode == 2
    assert "inception_9z/output" in last_line(r.stderr) and "inception_4c/output" in last_line(r.stderr)
    assert "Traceback" not in r.stderr and containers_of(docker_client, tag) == []


def test_no_image_with_no_build_names_the_command(docker_client, web, tmp_path):
    r = ddctl(
        "run",
        web + "/photos/cat.jpg",
        "--image",
        "ddctl/deepdream:absent-xyz",
        "--no-build",
        "-o",
        str(tmp_path),
    )
    assert r.returncode == 1
    assert "`ddctl build --tag ddctl/deepdream:absent-xyz`" in last_line(r.stderr)


def test_the_copy_path_forced_on_the_local_daemon_works(docker_client, dream_image, web, tmp_path, tag):
    r = ddctl(
        "run",
        web + "/photos/cat.jpg",
        "inception_4c/output",
        *SMALL,
        "--save-steps",
        "--image",
        dream_image,
        "-o",
        str(tmp_path),
        env=env_for(tag, DDCTL_TRANSFER="copy"),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "copied in and out through the Docker API" in r.stderr
    path = last_line(r.stdout)
    assert path == str(tmp_path / "cat-inception_4c-output-i2-o2.png")
    assert_png_of_user(path)
    steps = sorted(os.listdir(tmp_path / "cat-inception_4c-output-i2-o2-steps"))
    assert steps == [f"inception_4c-output-{o}-{i}.png" for o in range(2) for i in range(2)]
    assert containers_of(docker_client, tag) == []


def test_a_second_run_never_overwrites_the_first(dream_image, web, tmp_path, tag):
    args = (
        "run",
        web + "/photos/cat.jpg",
        "inception_4c/output",
        *SMALL,
        "--image",
        dream_image,
        "-o",
        str(tmp_path),
    )
    first = ddctl(*args, env=env_for(tag))
    assert first.returncode == 0, first.stderr[-2000:]
    p1 = last_line(first.stdout)
    digest = hashlib.sha1(open(p1, "rb").read()).hexdigest()
    second = ddctl(*args, env=env_for(tag))  # bind mount
    third = ddctl(*args, "--copy", env=env_for(tag))  # archive copy
    assert second.returncode == 0 and third.returncode == 0, second.stderr[-2000:] + third.stderr[-2000:]
    p2, p3 = last_line(second.stdout), last_line(third.stdout)
    assert [os.path.basename(p) for p in (p1, p2, p3)] == [
        "cat-inception_4c-output-i2-o2.png",
        "cat-inception_4c-output-i2-o2-2.png",
        "cat-inception_4c-output-i2-o2-3.png",
    ]
    assert hashlib.sha1(open(p1, "rb").read()).hexdigest() == digest


def test_ctrl_c_stops_and_removes_the_container_and_keeps_the_folder(
    docker_client, dream_image, web, tmp_path, tag
):
    out = tmp_path / "dreams"
    args = ["run", web + "/big.jpg", "inception_4c/output", "10", "4", "--save-steps"]
    running = []
    code, out_text, err_text = interrupt_after(
        [*args, "--image", dream_image, "-o", str(out)],
        "step 2/",
        tag,
        timeout=180,
        while_running=lambda proc: running.append(len(containers_of(docker_client, tag))),
    )
    assert running == [1]  # it was running when Ctrl-C came
    assert code == 130, err_text
    assert "interrupted" in err_text and "Traceback" not in err_text and out_text == ""
    assert containers_of(docker_client, tag) == []
    steps = out / "big-inception_4c-output-i10-o4-steps"
    assert out.is_dir() and steps.is_dir() and len(os.listdir(steps)) >= 1


def test_layers_lists_the_dreamable_layers(docker_client, dream_image, tag):
    r = ddctl("layers", "--image", dream_image, env=env_for(tag))
    assert r.returncode == 0, r.stderr
    assert re.search(r"inception_4c/output\s*\S\s*512\s*\S\s*16\b", r.stdout), r.stdout
    assert re.search(r"inception_3b/5x5_reduce\s*\S\s*32\s*\S\s*8\b", r.stdout), r.stdout
    assert containers_of(docker_client, tag) == []


@pytest.mark.parametrize("flags, size", [([], (1280, 640)), (["--max-size", "0"], (1600, 800))])
def test_a_big_photo_is_dreamed_at_a_size_that_fits_unless_asked(dream_image, tmp_path, tag, flags, size):
    src = tmp_path / "big.jpg"
    src.write_bytes(picture(size=(1600, 800)))
    # One step on a shallow layer: the point is the working size, not the dream.
    r = ddctl(
        "run",
        str(src),
        "inception_3a/1x1",
        "1",
        "1",
        "--image",
        dream_image,
        "-o",
        str(tmp_path / "out"),
        *flags,
        env=env_for(tag),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert assert_png_of_user(last_line(r.stdout)) == size


def test_build_never_takes_the_name_of_an_image_it_did_not_make(docker_client, base_image):
    """`ddctl build --tag debian:bullseye-slim` would have moved the base image's name to the
    dream image; a tag of another image is refused before the build (exit 2)."""
    name = "ddctl-test/qa-notdream:" + uuid.uuid4().hex[:6]
    base = docker_client.images.get(base_image)
    base.tag(name)
    try:
        r = ddctl("build", "--weights", "untrained", "--tag", name, env={"DDCTL_LABELS": TEST_LABELS_ENV})
        assert r.returncode == 2, r.stderr[-2000:]
        assert f"--tag {name} names an image that is not a ddctl dream image" in r.stderr
        assert "step 1/" not in r.stderr and docker_client.images.get(name).id == base.id
    finally:
        docker_client.images.remove(name, noprune=True)


def test_swarm_verbs_on_a_daemon_outside_a_swarm_say_so_in_one_line(docker_client):
    if (docker_client.info().get("Swarm") or {}).get("LocalNodeState") == "active":
        pytest.skip("this daemon is in a swarm")
    for verb in ("setup", "clean"):
        r = ddctl("swarm", verb)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1, r.stderr
        assert lines[0].startswith("ddctl: This Docker endpoint is not part of a swarm: point DOCKER_HOST")
