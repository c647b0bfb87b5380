"""The build as events, against a faked SDK: stream parsing, failures, base image, context."""

import hashlib
import os
import tarfile
import types

import pytest
from docker.errors import APIError, ImageNotFound

from ddctl import build as b
from ddctl import image
from ddctl.context import build_context_tar, context_files, dockerfile_bases, find_context
from ddctl.errors import DdctlError, UsageError


def feed_all(parser, chunks):
    events = []
    for c in chunks:
        events += parser.feed(c)
    return events + parser.close()


STREAM = [
    {"stream": "Step 1/3 : FROM debian:bullseye-slim AS base\n"},
    {"stream": " ---> c72008cae291\n"},
    {"stream": "Step 2/3 : RUN apt-get update\n"},
    {"stream": " ---> Running in 0123\n"},
    {"stream": "Get:1 http://deb bullseye InRelease [116 kB]\nGet:2 http://deb"},  # split line
    {"stream": " bullseye/main amd64 Packages [8183 kB]\n"},
    {"stream": "fetch-weights: 1048576 of 53533754 bytes\n"},
    {"stream": "Step 3/3 : LABEL a=b\n"},
    {"aux": {"ID": "sha256:feedface"}},
    {"stream": "Successfully built feedface\n"},
]


def test_steps_lines_downloads_and_image_id_are_events():
    p = b.StreamParser()
    events = feed_all(p, STREAM)
    steps = [(e.step, e.steps_total, e.text) for e in events if e.kind == "step"]
    assert steps == [
        (1, 3, "FROM debian:bullseye-slim AS base"),
        (2, 3, "RUN apt-get update"),
        (3, 3, "LABEL a=b"),
    ]
    logs = [e.text for e in events if e.kind == "log"]
    assert "Get:2 http://deb bullseye/main amd64 Packages [8183 kB]" in logs  # joined across chunks
    dl = [e for e in events if e.kind == "download"]
    assert [(d.current, d.total, d.step) for d in dl] == [(1048576, 53533754, 2)]
    assert p.image_id == "sha256:feedface" and p.error is None


def test_pull_progress_inside_a_build_gives_download_bytes():
    p = b.StreamParser()
    ev = p.feed({"status": "Downloading", "progressDetail": {"current": 500, "total": 1000}, "id": "abc"})
    assert ev[0].kind == "download" and (ev[0].current, ev[0].total) == (500, 1000)
    ev = p.feed({"status": "Pulling fs layer", "progressDetail": {}, "id": "abc"})
    assert ev[0].kind == "pull" and "Pulling fs layer" in ev[0].text


def test_a_failure_names_the_step_and_its_last_lines_only():
    p = b.StreamParser(tail=3)
    feed_all(
        p,
        [
            {"stream": "Step 1/2 : RUN make\n"},
            {"stream": "old line of step 1\n"},
            {"stream": "Step 2/2 : RUN python3 build.py\n"},
            {"stream": " ---> Running in 0123abc\n"},
            {"stream": "line a\nline b\nline c\n\x1b[0mline d\n"},
            {"stream": "Removing intermediate container 0123abc\n"},
            {
                "errorDetail": {
                    "code": 1,
                    "message": "The command '/bin/sh -c python3 build.py' returned a non-zero code: 1",
                },
                "error": "The command ... returned a non-zero code: 1",
            },
        ],
    )
    msg = p.failure().message
    first = msg.splitlines()[0]
    assert "step 2/2 (RUN python3 build.py)" in first and "its command exited with code 1" in first
    assert "  line d" in msg and "line b" in msg and "line a" not in msg  # the last 3 lines
    assert "\x1b" not in msg and "Running in" not in msg and "intermediate" not in msg
    assert "old line of step 1" not in msg


def test_the_weights_download_failure_is_the_engine_s_sentence():
    p = b.StreamParser()
    feed_all(
        p,
        [
            {"stream": "Step 13/36 : RUN fetch-weights.py\n"},
            {"stream": "fetch-weights: downloading http://dl.example/bvlc.caffemodel\n"},
            {
                "stream": "ddctl: cannot get the weights: http://dl.example/x is unreachable (timed out); "
                "build without downloading: use --weights untrained, --weights PATH\n"
            },
            {"errorDetail": {"message": "The command returned a non-zero code: 1"}},
        ],
    )
    first = p.failure().message.splitlines()[0]
    assert "step 13/36" in first
    assert "cannot get the weights: http://dl.example/x is unreachable" in first
    assert "--weights untrained" in first


@pytest.mark.parametrize(
    "weights, url, sha1, want",
    [
        ("untrained", None, None, {"WEIGHTS": "untrained"}),
        ("download", None, None, {"WEIGHTS": "download"}),
        (
            "download",
            "http://h/w",
            "A" * 40,
            {
                "WEIGHTS": "download",
                "WEIGHTS_URL": "http://h/w",
                "WEIGHTS_SOURCE": "http://h/w",
                "WEIGHTS_SHA1": "a" * 40,
                "WEIGHTS_NAME": "custom",
            },
        ),
        (
            "download",
            "https://me:pw@h/w?token=abc",
            "A" * 40,
            {
                "WEIGHTS": "download",
                "WEIGHTS_URL": "https://me:pw@h/w?token=abc",
                "WEIGHTS_SOURCE": "https://***@h/w?token=***",  # the image's label
                "WEIGHTS_SHA1": "a" * 40,
                "WEIGHTS_NAME": "custom",
            },
        ),
        (
            None,
            "http://h/w",
            image.BVLC_GOOGLENET_SHA1,
            {
                "WEIGHTS": "download",
                "WEIGHTS_URL": "http://h/w",
                "WEIGHTS_SOURCE": "http://h/w",
                "WEIGHTS_SHA1": image.BVLC_GOOGLENET_SHA1,
            },
        ),
    ],
)
def test_weights_options_become_build_args(weights, url, sha1, want):
    assert image.weights_buildargs(weights, url, sha1) == (want, None)


# A NetParameter as Caffe writes it: name "tiny" (field 1), one layer (field 100) named "d".
TINY_NET = b"\x0a\x04tiny" + b"\xa2\x06\x03\x0a\x01d"


def test_a_weights_file_is_hashed_and_sent(tmp_path):
    f = tmp_path / "my.caffemodel"
    f.write_bytes(TINY_NET)
    args, path = image.weights_buildargs(str(f))
    assert args == {
        "WEIGHTS": "file",
        "WEIGHTS_SHA1": hashlib.sha1(TINY_NET).hexdigest(),
        "WEIGHTS_NAME": "custom",
        "WEIGHTS_SOURCE": "my.caffemodel",
    }
    assert path == str(f)


@pytest.mark.parametrize(
    "weights, url, sha1, words",
    [
        ("download", "http://h/w", None, "go together"),
        ("download", None, "a" * 40, "go together"),
        ("download", "http://h/w", "xyz", "40-digit hex"),
        ("untrained", "http://h/w", "a" * 40, "makes no sense"),
        ("/no/such/file.caffemodel", None, None, "no such file"),
    ],
)
def test_clashing_weights_options_are_usage_errors(weights, url, sha1, words):
    with pytest.raises(UsageError) as e:
        image.weights_buildargs(weights, url, sha1)
    assert words in e.value.message


# --- the context ------------------------------------------------------------------------


def make_root(tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE=debian:bullseye-slim\nFROM $BASE AS base\nRUN true\nFROM base AS two\n"
        "FROM --platform=linux/amd64 busybox:1 AS tools\nFROM two\n"
    )
    (tmp_path / ".dockerignore").write_text("*\n!engine/\n")
    for d in ("engine", "provision", "weights", "engine/__pycache__", "tests"):
        (tmp_path / d).mkdir()
    (tmp_path / "engine/__main__.py").write_text("print('hi')\n")
    (tmp_path / "engine/__pycache__/x.pyc").write_bytes(b"\0")
    (tmp_path / "provision/fetch-weights.py").write_text("#\n")
    (tmp_path / "weights/README").write_text("r\n")
    (tmp_path / "weights/old.caffemodel").write_bytes(b"big")
    (tmp_path / "tests/test_x.py").write_text("#\n")
    return str(tmp_path)


def test_the_context_is_what_the_image_needs_and_nothing_else(tmp_path):
    root = make_root(tmp_path)
    names = [a for _, a in context_files(root)]
    assert names == [
        "Dockerfile",
        ".dockerignore",
        "engine/__main__.py",
        "provision/fetch-weights.py",
        "weights/README",
    ]


def test_the_context_tar_carries_the_user_weights_as_user_caffemodel(tmp_path):
    root = make_root(tmp_path)
    w = tmp_path / "elsewhere.bin"
    w.write_bytes(b"W" * 10)
    with tarfile.open(fileobj=build_context_tar(root, str(w)), mode="r:gz") as t:
        assert t.extractfile("weights/user.caffemodel").read() == b"W" * 10
        assert t.extractfile("Dockerfile").read().startswith(b"ARG BASE")


def test_the_context_is_found_in_a_checkout_or_under_share(tmp_path):
    root = make_root(tmp_path)
    assert find_context([str(tmp_path / "nothing"), root]) == root
    with pytest.raises(DdctlError) as e:
        find_context([str(tmp_path / "nothing")])
    assert "pip install" in e.value.message
    assert find_context() and dockerfile_bases(find_context())  # this checkout


def test_base_images_skip_stages_and_apply_arg_defaults(tmp_path):
    assert dockerfile_bases(make_root(tmp_path)) == ["debian:bullseye-slim", "busybox:1"]


# --- build_image against a faked SDK ---------------------------------------------------


class FakeImages:
    def __init__(self, present, pull_error=None):
        self.present = set(present)
        self.pulled = []
        self.pull_error = pull_error

    def get(self, name):
        if name not in self.present:
            raise ImageNotFound(f"No such image: {name}")
        return types.SimpleNamespace(
            id="sha256:feedface",
            attrs={
                "Size": 954_000_000,
                "Config": {"Labels": {"io.ddctl.weights": "untrained", "io.ddctl.weights.sha1": "3fe6"}},
            },
        )

    def pull(self, repo, tag=None):
        if self.pull_error:
            raise self.pull_error
        self.pulled.append(f"{repo}:{tag}")
        self.present.add(f"{repo}:{tag}")


class FakeAPI:
    def __init__(self, stream, images, tag_on_success=True, raise_=None):
        self.stream, self.images, self.calls, self.raise_ = stream, images, [], raise_

    def build(self, **kw):
        self.calls.append(kw)
        if self.raise_:
            raise self.raise_
        if not any("error" in c or "errorDetail" in c for c in self.stream):
            self.images.present.add(kw["tag"])
        return iter(self.stream)


def fake_client(stream, present=("debian:bullseye-slim",), **kw):
    images = FakeImages(present, kw.pop("pull_error", None))
    return types.SimpleNamespace(images=images, api=FakeAPI(stream, images, **kw))


def test_build_image_streams_events_and_summarises(tmp_path):
    client = fake_client(STREAM, present=("debian:bullseye-slim", "busybox:1"))
    events = []
    s = b.build_image(
        client,
        tag="t:1",
        weights=image.weights_buildargs("untrained"),
        root=make_root(tmp_path),
        on_event=events.append,
        labels={"io.ddctl.test": "1"},
    )
    call = client.api.calls[0]
    assert call["custom_context"] and call["encoding"] == "gzip" and call["network_mode"] == "host"
    assert call["decode"] and call["rm"] and call["forcerm"] and call["nocache"] is False
    assert call["buildargs"]["WEIGHTS"] == "untrained"
    assert call["labels"]["io.ddctl.test"] == "1" and call["labels"]["io.ddctl.image"] == "deepdream"
    assert [e.kind for e in events].count("step") == 3 and events[-1].kind == "done"
    assert (s.tag, s.size, s.weights) == ("t:1", 954_000_000, "untrained")
    assert client.images.pulled == []  # present: used as it is


def test_a_failed_build_raises_with_the_step(tmp_path):
    client = fake_client(
        [
            {"stream": "Step 1/1 : RUN false\n"},
            {"stream": "boom\n"},
            {"errorDetail": {"message": "returned a non-zero code: 1"}},
        ]
    )
    with pytest.raises(b.BuildFailed) as e:
        b.build_image(
            client, tag="t:1", weights=image.weights_buildargs("untrained"), root=make_root(tmp_path)
        )
    assert "step 1/1 (RUN false)" in e.value.message and "boom" in e.value.message
    assert e.value.exit_code != 0


def test_a_refused_build_is_one_sentence(tmp_path):
    client = fake_client([], raise_=APIError("400", explanation="dockerfile parse error line 3"))
    with pytest.raises(DdctlError) as e:
        b.build_image(
            client, tag="t:1", weights=image.weights_buildargs("untrained"), root=make_root(tmp_path)
        )
    assert "dockerfile parse error line 3" in e.value.message


def test_an_absent_base_image_is_pulled_and_a_failed_pull_says_what_to_do(tmp_path):
    root = make_root(tmp_path)
    client = fake_client(STREAM, present=())
    b.build_image(client, tag="t:1", weights=image.weights_buildargs("untrained"), root=root)
    assert client.images.pulled == ["debian:bullseye-slim", "busybox:1"]
    client = fake_client(STREAM, present=(), pull_error=APIError("pull access denied"))
    with pytest.raises(DdctlError) as e:
        b.build_image(client, tag="t:1", weights=image.weights_buildargs("untrained"), root=root)
    assert "provision/bootstrap-base-image.sh" in e.value.message
    assert "docker pull debian:bullseye-slim" in e.value.message
    assert client.api.calls == []


def test_human_size():
    assert b.human_size(954_123_456) == "954.1 MB" and b.human_size(12) == "12 B"


def test_the_image_s_own_ddctl_line_is_the_reason():
    p = b.StreamParser()
    feed_all(
        p,
        [
            {"stream": "Step 26/36 : RUN set -e; if [ \"$WEIGHTS\" = file ]; then check; fi\n"},
            {"stream": "init-weights: x is not a Caffe model file (Error parsing message)\n"},
            {
                "stream": "ddctl: x is not bvlc_googlenet weights that Caffe can load; use --weights untrained\n"
            },
            {
                "errorDetail": {
                    "message": "The command '/bin/sh -c set -e; if ...; fi' returned a non-zero code: 1"
                }
            },
        ],
    )
    msg = p.failure().message
    first = msg.splitlines()[0]
    assert first.endswith("x is not bvlc_googlenet weights that Caffe can load; use --weights untrained")
    assert "/bin/sh -c" not in msg and "init-weights: x is not a Caffe model file" in msg


def test_a_device_or_a_pipe_as_weights_is_named_so_not_a_missing_file(tmp_path):
    os.mkfifo(str(tmp_path / "pipe"))
    for path in ("/dev/null", str(tmp_path / "pipe")):
        with pytest.raises(UsageError) as e:
            image.weights_buildargs(path)
        assert e.value.message == f"--weights {path} is not a regular file: give a .caffemodel file."


def test_a_weights_folder_is_named_a_folder_not_a_missing_file(tmp_path):
    with pytest.raises(UsageError) as e:
        image.weights_buildargs(str(tmp_path))
    assert "is a folder" in e.value.message and "no such file" not in e.value.message


@pytest.mark.parametrize(
    "content, words",
    [
        (b"my notes about dreams\n", "does not start like one (it is text)"),
        (b'name: "GoogleNet"\nlayer {\n', "does not start like one (it is text)"),  # a prototxt
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "does not start like one"),
        (b"", "it is empty"),
        (TINY_NET[:-2], "truncated?"),
        (b"\x0a\x04tiny", "it holds no layers"),
    ],
)
def test_a_file_that_is_not_caffe_weights_is_refused_before_the_build(tmp_path, content, words):
    f = tmp_path / "notes.txt"
    f.write_bytes(content)
    with pytest.raises(UsageError) as e:
        image.weights_buildargs(str(f))
    assert e.value.exit_code == 2 and "\n" not in e.value.message
    assert e.value.message.startswith(f"--weights {f} is not a Caffe model (.caffemodel): ")
    assert words in e.value.message


def test_old_v1_weights_pass_the_check(tmp_path):
    """bvlc_googlenet.caffemodel (2014) holds V1 `layers` (field 2) after its name."""
    from ddctl.caffemodel import walk

    f = tmp_path / "bvlc_googlenet.caffemodel"
    f.write_bytes(b"\x0a\x09GoogleNet" + b"\x12\x03\x0a\x01d" * 3 + b"\x28\x01")
    assert walk(str(f)) == 3
