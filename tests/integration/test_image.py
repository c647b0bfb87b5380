"""The dream image against the real daemon: builds, weights, labels, the engine inside.

Uses the session fixture `dream_image` (tests/integration/image_fixtures.py: the image built
with WEIGHTS=untrained). Everything created carries io.ddctl.test=<session> and is removed after.
Pictures stay small (160x120, 2 iterations, 2 octaves) so the suite fits CI's time.
"""

import hashlib
import json
import os
import re

import numpy as np
import pytest
from image_fixtures import REPO, TEST_LABEL, api_client, build_image, copy_from_image, run_in_image
from PIL import Image

from ddctl.containers import lockdown, run_to_completion
from ddctl.image import BVLC_GOOGLENET_SHA1

WEIGHTS_PATH = "/opt/ddctl/model/bvlc_googlenet.caffemodel"
ALTERNATIVES = "use --weights untrained, --weights PATH, or --weights-url URL --weights-sha1 HEX"


def remove_image(docker_client, tag):
    try:
        docker_client.images.remove(tag, force=True)
    except Exception:
        pass


# -----------------------------------------------------------------------------
# the image itself


def test_untrained_image_says_so_in_its_labels(docker_client, dream_image):
    labels = docker_client.images.get(dream_image).labels
    assert labels["io.ddctl.image"] == "deepdream"
    assert labels["io.ddctl.weights"] == "untrained"
    assert re.fullmatch(r"[0-9a-f]{40}", labels["io.ddctl.weights.sha1"])
    assert labels["io.ddctl.weights.source"]
    assert "io.ddctl.version" in labels
    # the label's SHA1 is the file's
    data = copy_from_image(docker_client, dream_image, WEIGHTS_PATH)
    assert hashlib.sha1(data).hexdigest() == labels["io.ddctl.weights.sha1"]


def test_image_runs_as_non_root_on_openblas(docker_client, dream_image):
    config = docker_client.images.get(dream_image).attrs["Config"]
    assert config["User"] not in ("", "root", "0")
    assert config["WorkingDir"] == "/opt/ddctl"  # never the output folder
    assert config["Entrypoint"] == ["python3", "-I", "-B", "-m", "engine"]
    script = "import caffe._caffe as c; print(c.__file__)"
    code, out, err = run_in_image(
        docker_client,
        dream_image,
        [
            "-c",
            "id -u; stat -c %%a /images; "
            "ldd $(python3 -c '%s' 2>/dev/null) | awk '/libblas/ {print $3}' | xargs readlink -f" % script,
        ],
        entrypoint=["sh"],
    )
    assert code == 0, err
    uid, mode, blas = out.split()
    assert uid != "0"
    assert mode == "1777"
    assert "openblas" in blas


def test_list_layers_offers_blobs_not_relus(docker_client, dream_image):
    code, out, err = run_in_image(docker_client, dream_image, ["--list-layers"])
    assert code == 0, err
    layers = {layer["name"]: layer for layer in json.loads(out)["layers"]}
    assert layers["inception_4c/output"]["channels"] == 512
    assert layers["inception_4c/output"]["stride"] == 16
    assert layers["inception_3b/5x5_reduce"]["channels"] == 32
    assert not [n for n in layers if "relu" in n or n in ("data", "prob", "pool5/7x7_s1")]


# -----------------------------------------------------------------------------
# the weights at build time


def test_default_build_fails_with_the_alternatives_when_the_weights_host_is_unreachable(
    docker_client, dream_image
):
    """The default download (the published file and SHA1) from a host that does not answer
    (a closed port on 127.0.0.1, so that the test means the same with or without Internet):
    the build must say what to do."""
    tag = "ddctl/deepdream:test-default"
    url = "http://127.0.0.1:9/bvlc_googlenet.caffemodel"
    buildargs = {"WEIGHTS": "download", "WEIGHTS_URL": url, "WEIGHTS_SHA1": BVLC_GOOGLENET_SHA1}
    image_id, log, error = build_image(api_client(docker_client), tag, buildargs)
    remove_image(docker_client, tag)
    assert error is not None and image_id is None
    assert f"ddctl: cannot get the weights: {url} is unreachable" in log
    assert ALTERNATIVES in log


@pytest.fixture(scope="module")
def weights_server(docker_client, dream_image, http_server):
    """Serves the untrained image's weights (a real caffemodel) as /bvlc_googlenet.caffemodel."""
    data = copy_from_image(docker_client, dream_image, WEIGHTS_PATH)
    return http_server({"/bvlc_googlenet.caffemodel": data}), hashlib.sha1(data).hexdigest()


def test_download_from_a_mirror_with_the_right_sha1_builds(docker_client, weights_server):
    server, sha1 = weights_server
    tag = "ddctl/deepdream:test-mirror"
    url = server.url + "/bvlc_googlenet.caffemodel"
    try:
        image_id, log, error = build_image(
            api_client(docker_client),
            tag,
            {
                "WEIGHTS": "download",
                "WEIGHTS_URL": url,
                "WEIGHTS_SOURCE": url,  # the label's words (ddctl passes the URL redacted)
                "WEIGHTS_SHA1": sha1,
                "WEIGHTS_NAME": "custom",
            },
        )
        assert error is None, log[-3000:]
        labels = docker_client.images.get(tag).labels
        assert labels["io.ddctl.weights.sha1"] == sha1
        assert labels["io.ddctl.weights.source"] == url
        assert labels["io.ddctl.weights"] == "custom"
        assert hashlib.sha1(copy_from_image(docker_client, tag, WEIGHTS_PATH)).hexdigest() == sha1
    finally:
        remove_image(docker_client, tag)


def test_download_with_a_wrong_sha1_fails(docker_client, weights_server):
    server, sha1 = weights_server
    tag = "ddctl/deepdream:test-badsha"
    wrong = "0" * 40
    image_id, log, error = build_image(
        api_client(docker_client),
        tag,
        {
            "WEIGHTS": "download",
            "WEIGHTS_URL": server.url + "/bvlc_googlenet.caffemodel",
            "WEIGHTS_SHA1": wrong,
        },
    )
    remove_image(docker_client, tag)
    assert error is not None
    assert "has SHA1 %s, expected %s" % (sha1, wrong) in log
    assert ALTERNATIVES in log


def test_download_of_a_missing_file_fails(docker_client, weights_server):
    server, sha1 = weights_server
    tag = "ddctl/deepdream:test-404"
    image_id, log, error = build_image(
        api_client(docker_client),
        tag,
        {"WEIGHTS": "download", "WEIGHTS_URL": server.url + "/nothing-here.caffemodel", "WEIGHTS_SHA1": sha1},
    )
    remove_image(docker_client, tag)
    assert error is not None
    assert "HTTP 404" in log
    assert ALTERNATIVES in log


# -----------------------------------------------------------------------------
# the engine inside the image


@pytest.fixture
def images_dir(tmp_path):
    """A host folder mounted as /images, writable by the image's user."""
    d = tmp_path / "images"
    d.mkdir()
    os.chmod(str(d), 0o777)
    return d


def test_engine_dreams_a_small_picture(docker_client, dream_image, images_dir):
    rng = np.random.RandomState(0)
    Image.fromarray(rng.randint(0, 256, (120, 160, 3), dtype=np.uint8)).save(str(images_dir / "small.png"))
    code, out, err = run_in_image(
        docker_client,
        dream_image,
        ["small.png", "inception_4c/output", "2", "2", "--progress", "json", "--seed", "1"],
        volumes={str(images_dir): {"bind": "/images", "mode": "rw"}},
        user="%d:%d" % (os.getuid(), os.getgid()),
    )
    assert code == 0, out + err
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert events[-1]["event"] == "done"
    path = events[-1]["path"]
    assert path.startswith("/images/")
    produced = images_dir / os.path.relpath(path, "/images")
    with Image.open(str(produced)) as im:
        assert im.size == (160, 120)
        assert im.format == "PNG"
    assert len([e for e in events if e["event"] == "step"]) == 4


def run_check(docker_client, image, script, *args):
    """tests/integration/in_image/SCRIPT ARGS run by the image's Python, the tests read-only."""
    return run_in_image(
        docker_client,
        image,
        [f"/src/tests/integration/in_image/{script}", *args],
        entrypoint=["python3"],
        volumes={os.path.join(REPO, "tests"): {"bind": "/src/tests", "mode": "ro"}},
    )


@pytest.mark.parametrize(
    "layer,jitter,seed",
    [
        ("inception_3b/5x5_reduce", 0, 0),
        ("inception_4c/output", 0, 0),
        ("inception_4c/output", 32, 7),
        ("pool1/norm1", 32, 3),  # the LRN's output itself (engine/lrn_kernels.py, powf.py)
        ("inception_5a/output", 32, 3),  # past inception_4c: pool4, the 5a module
    ],
)
def test_engine_equals_the_notebook(docker_client, dream_image, layer, jitter, seed):
    """engine.dream + engine.caffe_net, with its own convolutions, pooling and LRN, give the
    notebook transcription's picture (on a force_backward caffe.Classifier) bit for bit:
    the float picture, not only the uint8 one."""
    code, out, err = run_check(
        docker_client, dream_image, "compare_notebook.py", layer, str(jitter), str(seed)
    )
    assert code == 0, out + err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["changed"] > 0.5  # the dream did change the picture
    assert result["max_diff"] == 0 and result["float_equal"], result
    fast_layers = 5 if layer == "pool1/norm1" else 10  # conv1, pool1, norm1, input, objective
    assert result["caffe_convolutions"] == 0 and result["python_layers"] >= fast_layers, result  # fast path


def test_max_pooling_is_caffe_s_bit_for_bit_ties_included(docker_client, dream_image):
    """The engine's max pooling (engine/caffe_net.py) against Caffe's Pooling layer on
    pictures full of ties: the same maxima, the same "first maximum" mask, the same gradient."""
    code, out, err = run_check(docker_client, dream_image, "check_pooling.py")
    assert code == 0, out + err
    results = json.loads(out.strip().splitlines()[-1])["results"]
    assert len(results) == 9
    for r in results:
        assert r["top_equal"] and r["dx_equal"], r


def test_importing_the_net_leaves_caffe_io_for_later(docker_client, dream_image):
    """Every dream starts by importing engine/caffe_net.py: that no longer loads skimage and
    matplotlib (caffe.io's imports, about 1 s), and caffe.io still works when read."""
    code, out, err = run_check(docker_client, dream_image, "check_startup.py")
    assert code == 0, out + err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["loaded_by_import"] == [], result
    assert result["io_works"] and result["classifier"] == "Classifier", result
    assert "skimage" in result["loaded_after_use"], result  # the real caffe.io ran on use


def test_convolutions_are_caffe_s_bit_for_bit(docker_client, dream_image):
    """The engine's convolutions (engine/conv_kernels.py: im2col, OpenBLAS, col2im, the fused
    ReLU) against Caffe's Convolution + ReLU layers, forward and backward, compared as bits:
    GoogLeNet's kernel shapes, dilation, wide padding, pictures split into several blocks."""
    code, out, err = run_check(docker_client, dream_image, "check_convolution.py")
    assert code == 0, out + err
    results = json.loads(out.strip().splitlines()[-1])["results"]
    assert len(results) == 9
    for r in results:
        assert r["python_layers"] == 1, r  # the engine's layer ran, not Caffe's
        assert r["top_equal"] and r["dx_equal"], r


def test_lrn_is_caffe_s_bit_for_bit(docker_client, dream_image):
    """The engine's LRN (numba's running sums; glibc's powf on 16 lanes for beta 0.75, see
    engine/powf.py) against Caffe's LRN layer, forward and backward, as bits; and that powf
    against libm's on 18.8 M inputs spread over the whole float32 range."""
    code, out, err = run_check(docker_client, dream_image, "check_lrn.py")
    assert code == 0, out + err
    result = json.loads(out.strip().splitlines()[-1])
    assert len(result["results"]) == 4
    for r in result["results"]:
        assert r["top_equal"] and r["dx_equal"], r
    assert result["powf_checked"] > 18_000_000 and result["powf_mismatches"] == 0, result


def test_the_image_s_resize_is_scipy_s_zoom(docker_client, dream_image):
    """The octaves are resized in the image by numba (engine/resize_kernel.py): the same
    float32 pictures as scipy.ndimage.zoom(order=1), bit for bit."""
    code, out, err = run_check(docker_client, dream_image, "check_resize.py")
    assert code == 0, out + err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["numba"], result  # the compiled path ran
    assert len(result["results"]) == 6 and all(r["equal"] for r in result["results"]), result


def test_a_locked_down_dream_compiles_nothing(docker_client, dream_image, tmp_path):
    """A dream container as ddctl starts it (read-only root, /tmp a tmpfs, not root) loads
    every numba kernel from the image's cache: one compiled at run time would cost every
    dream seconds (numba says what it saves and loads under NUMBA_DEBUG_CACHE)."""
    tmp_path.chmod(0o777)
    rgb = (np.random.RandomState(0).rand(72, 96, 3) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "small.png")
    code, out, err = run_to_completion(
        docker_client,
        dream_image,
        timeout=600,
        command=["small.png", "inception_4c/output", "2", "2", "--seed", "0", "--progress", "json"],
        volumes={str(tmp_path): {"bind": "/images", "mode": "rw"}},
        user="1000:1000",
        environment={"NUMBA_DEBUG_CACHE": "1"},
        labels=dict(TEST_LABEL),
        **lockdown(docker_client, memory=2 << 30),
    )
    assert code == 0, out + err
    log = [line for line in (out + err).splitlines() if line.startswith("[cache]")]
    assert [line for line in log if "data saved" in line] == [], log
    loaded = " ".join(line for line in log if "data loaded" in line)
    for kernel in ("im2col", "col2im", "maxpool_forward", "lrn_forward", "bilinear"):
        assert kernel in loaded, log


def test_shape_rules_match_caffe(docker_client, dream_image):
    """caffe_net's own shape inference (layers' strides, min_input_size, used to refuse too
    many octaves) agrees with the shapes Caffe gives, and the minimum sizes really run."""
    code, out, err = run_check(docker_client, dream_image, "check_shapes.py")
    assert code == 0, out + err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"], result["problems"]
    assert result["min_sizes"]["inception_4c/output"] == 15


@pytest.fixture
def file_context(tmp_path):
    """A copy of the build context (Dockerfile, engine, provision, weights) to add
    weights/user.caffemodel to without touching the checkout."""
    import shutil

    ctx = tmp_path / "context"
    ctx.mkdir()
    for name in ("Dockerfile", ".dockerignore"):
        shutil.copy(os.path.join(REPO, name), str(ctx / name))
    for name in ("engine", "provision", "weights"):
        shutil.copytree(
            os.path.join(REPO, name),
            str(ctx / name),
            ignore=shutil.ignore_patterns("__pycache__", "*.caffemodel"),
        )
    return ctx


def test_weights_from_a_file(docker_client, dream_image, weights_server, file_context):
    server, sha1 = weights_server
    data = copy_from_image(docker_client, dream_image, WEIGHTS_PATH)
    (file_context / "weights" / "user.caffemodel").write_bytes(data)
    api = api_client(docker_client)
    tag = "ddctl/deepdream:test-file"
    try:
        # wrong SHA1: refused with what to do
        image_id, log, error = build_image(
            api, tag, {"WEIGHTS": "file", "WEIGHTS_SHA1": "1" * 40}, path=str(file_context)
        )
        assert error is not None
        assert "weights/user.caffemodel has SHA1 %s, expected %s" % (sha1, "1" * 40) in log
        # right SHA1: builds, labels name the file
        image_id, log, error = build_image(
            api,
            tag,
            {"WEIGHTS": "file", "WEIGHTS_SHA1": sha1, "WEIGHTS_SOURCE": "mine.caffemodel"},
            path=str(file_context),
        )
        assert error is None, log[-3000:]
        labels = docker_client.images.get(tag).labels
        assert labels["io.ddctl.weights"] == "custom"
        assert labels["io.ddctl.weights.sha1"] == sha1
        assert labels["io.ddctl.weights.source"] == "mine.caffemodel"
        # not a caffemodel at all (with its right SHA1): refused, not a broken image
        junk = b"<html>not weights</html>\n"
        (file_context / "weights" / "user.caffemodel").write_bytes(junk)
        image_id, log, error = build_image(
            api,
            tag,
            {"WEIGHTS": "file", "WEIGHTS_SHA1": hashlib.sha1(junk).hexdigest()},
            path=str(file_context),
        )
        assert error is not None
        assert "is not bvlc_googlenet weights that Caffe can load" in log
    finally:
        remove_image(docker_client, tag)


@pytest.mark.parametrize("jitter,seed", [(0, 0), (32, 7)])
def test_objectives_on_caffe(docker_client, dream_image, jitter, seed):
    """On Caffe: the guided dream equals the notebook's objective_guide; a blob name and its
    parsed objective give the same gradient bits; channel and mixed objectives add up."""
    code, out, err = run_check(docker_client, dream_image, "check_objectives.py", str(jitter), str(seed))
    assert code == 0, out + err
    r = json.loads(out.strip().splitlines()[-1])
    assert r["guided_max_diff"] == 0 and r["guided_changed"] > 0.5, r
    assert r["plain_equal"] and r["before_equal"], r
    assert r["channel_rel_err"] < 1e-4 and 0 < r["channel_share"] < 0.5, r
    assert r["mix_rel_err"] < 1e-4, r
