"""The run's logic against a faked SDK: transfer, naming, archive copy, events, cleanup.

The engine's argv, defaults and event shapes are bound to the engine itself in
test_contract.py; the fake container below replays events the engine really emits.
"""

import io
import os
import shutil
import sys
import tarfile
import tempfile
import types

import pytest
from docker.errors import APIError, ImageNotFound
from PIL import Image

from ddctl.client import Endpoint
from ddctl.errors import DdctlError, Interrupted, UsageError
from ddctl.image import DEFAULT_TAG
from ddctl.run import archive, dream, naming, options, progress, transfer
from ddctl.run.options import DreamOptions
from engine import cli as engine_cli

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_engine_fakenet import FakeNet

LOCAL = Endpoint(host="unix:///var/run/docker.sock", source="default")


def run_dream(client, source, opts=None, output_dir="dreams", ep=LOCAL, transfer=None, on_event=None, **kw):
    """What `ddctl run` does: prepare (no Docker), then dream on the client."""
    with tempfile.TemporaryDirectory() as workdir:
        job = dream.prepare(source, workdir, opts, output_dir, transfer, on_event)
        return dream.dream(client, job, ep, on_event=on_event, **kw)


@pytest.mark.parametrize(
    "host, force, env, mode",
    [
        ("unix:///var/run/docker.sock", None, {}, "mount"),
        ("tcp://192.168.99.100:2376", None, {}, "copy"),
        ("ssh://me@box", None, {}, "copy"),
        ("unix:///var/run/docker.sock", "copy", {}, "copy"),
        ("unix:///var/run/docker.sock", None, {"DDCTL_TRANSFER": "copy"}, "copy"),
        ("tcp://10.0.0.1:2375", None, {"DDCTL_TRANSFER": "mount"}, "mount"),
    ],
)
def test_the_transfer_follows_the_daemon_or_what_was_forced(host, force, env, mode):
    got, why = transfer.choose_transfer(Endpoint(host=host, source="x"), force, env)
    assert got == mode and why
    if mode == "copy" and not force and not env:
        assert host in why and "remote" in why


def test_a_bad_transfer_setting_is_a_usage_error():
    with pytest.raises(UsageError):
        transfer.choose_transfer(LOCAL, None, {"DDCTL_TRANSFER": "ftp"})


def test_the_output_folder_is_created_or_refused(tmp_path):
    assert naming.prepare_output_dir(str(tmp_path / "a" / "b")) == str(tmp_path / "a" / "b")
    assert os.path.isdir(tmp_path / "a" / "b")
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError) as e:
        naming.prepare_output_dir(str(tmp_path / "f"))
    assert "not a folder" in e.value.message


NOBODY = 65534


def as_unprivileged(func, *args):
    """func(*args) as a user who may not write everywhere: as we are, or, when we are root
    (CI runs as root), in a forked child that became nobody. Returns the message of the
    DdctlError it raised, or None."""

    def call():
        try:
            func(*args)
        except DdctlError as exc:
            return exc.message
        return None

    if os.geteuid() != 0:
        return call()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root for good, answer through the pipe, never return
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            msg = call()
            os.write(w, ("-" if msg is None else "+" + msg).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        answer = f.read().decode()
    os.waitpid(pid, 0)
    assert answer, "the unprivileged child died without answering"
    return None if answer == "-" else answer[1:]


def test_a_read_only_output_folder_is_refused():
    base = tempfile.mkdtemp(prefix="ddctl-ro-")  # under /tmp: nobody may reach it
    try:
        os.chmod(base, 0o755)
        ro = os.path.join(base, "ro")
        os.mkdir(ro)
        os.chmod(ro, 0o555)
        msg = as_unprivileged(naming.prepare_output_dir, ro)
        assert msg and "is not writable by this user" in msg and ro in msg
        assert as_unprivileged(naming.prepare_output_dir, base + "/ro/sub") is not None  # cannot create
        os.chmod(ro, 0o777)
        assert as_unprivileged(naming.prepare_output_dir, ro) is None  # the same folder, writable
    finally:
        shutil.rmtree(base)


def test_free_names_follow_the_engine_rule(tmp_path):
    assert naming.free_stem(str(tmp_path), "cat-x-i2-o2", ".png") == "cat-x-i2-o2"
    (tmp_path / "cat-x-i2-o2.png").write_text("")
    (tmp_path / "cat-x-i2-o2-2-steps").mkdir()  # a steps folder also claims its name
    assert naming.free_stem(str(tmp_path), "cat-x-i2-o2", ".png") == "cat-x-i2-o2-3"


def images_tar(files):
    """What get_archive('/images') returns: the folder itself, then its content."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        d = tarfile.TarInfo("images")
        d.type = tarfile.DIRTYPE
        t.addfile(d)
        for name, data in files.items():
            if data is None:
                i = tarfile.TarInfo("images/" + name)
                i.type = tarfile.DIRTYPE
                t.addfile(i)
            else:
                i = tarfile.TarInfo("images/" + name)
                i.size = len(data)
                t.addfile(i, io.BytesIO(data))
        evil = tarfile.TarInfo("images/../../evil")
        evil.size = 1
        t.addfile(evil, io.BytesIO(b"x"))
        link = tarfile.TarInfo("images/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
    buf.seek(0)
    return buf


def test_copied_results_never_overwrite_and_steps_move_with_their_picture(tmp_path):
    (tmp_path / "cat-l-i2-o2.png").write_bytes(b"first run")
    got = archive.extract_new_files(
        images_tar(
            {
                "cat-l-i2-o2.png": b"second run",
                "cat-l-i2-o2-steps": None,
                "cat-l-i2-o2-steps/l-0-0.png": b"step",
            }
        ),
        str(tmp_path),
    )
    assert (tmp_path / "cat-l-i2-o2.png").read_bytes() == b"first run"
    assert got == {
        "/images/cat-l-i2-o2.png": str(tmp_path / "cat-l-i2-o2-2.png"),
        "/images/cat-l-i2-o2-steps/l-0-0.png": str(tmp_path / "cat-l-i2-o2-2-steps" / "l-0-0.png"),
    }
    assert (tmp_path / "cat-l-i2-o2-2.png").read_bytes() == b"second run"
    assert not (tmp_path.parent / "evil").exists() and not (tmp_path / "link").exists()


def test_engine_lines_and_partial_chunks():
    s = progress.LineSplitter()
    assert s.feed(b'{"event": "st') == []
    assert s.feed(b'art"}\nnot json\n{"event"') == ['{"event": "start"}', "not json"]
    assert s.close() == ['{"event"']
    assert progress.parse_engine_line('{"event": "step", "step": 1}') == {"event": "step", "step": 1}
    assert progress.parse_engine_line("Traceback (most recent call last):") is None
    assert progress.parse_engine_line('{"no": "event"}') is None


def test_the_eta_weighs_octaves_by_their_pixels():
    p = progress.DreamProgress(
        {"steps_total": 4, "octaves": 2, "iterations": 2, "width": 140, "height": 100}, 1.4
    )
    p.update({"step": 1, "octave": 0, "iteration": 0, "width": 100, "height": 71, "elapsed": 1.0})
    # after 1 of 4 steps, only ~1/6 of the work is done: ETA ~5 s, not 3 s
    assert 0.15 < p.fraction < 0.18 and 4.5 < p.eta < 5.5
    for i, (w, h) in enumerate([(100, 71), (140, 100), (140, 100)], start=2):
        p.update(
            {"step": i, "octave": i // 3, "iteration": (i - 1) % 2, "width": w, "height": h, "elapsed": i}
        )
    assert p.fraction == 1.0 and p.eta == 0.0


# --- dream() against a faked SDK --------------------------------------------------------


def engine_lines(*argv):
    """What the engine really prints for argv (on the fake net, in a folder that stands for
    the container's /images, its paths written as the container's): a list of byte lines."""
    with tempfile.TemporaryDirectory() as images:
        Image.new("RGB", (40, 30), (200, 120, 90)).save(os.path.join(images, "cat.png"))
        out = io.StringIO()
        engine_cli.main(
            ["cat.png", *argv, "--progress", "json", "--output-dir", images],
            net_factory=lambda p, w: FakeNet(),
            stdout=out,
            stderr=io.StringIO(),
        )
        text = out.getvalue().replace(images, options.IMAGES)
    return [(line + "\n").encode() for line in text.splitlines()]


OK_EVENTS = engine_lines("conv1", "1", "1")  # start, step, saved, done
FINAL = "cat-conv1-i1-o1.png"
ONE = DreamOptions(layer="conv1", iterations=1, octaves=1)


class FakeContainer:
    def __init__(self, client, kw, chunks, code, stderr=b"", interrupt_after=None, no_binds=False):
        self.client, self.kw, self.chunks, self.code, self.stderr = client, kw, chunks, code, stderr
        self.short_id, self.attrs, self.removed, self.stopped = "c0ffee", {"State": {}}, False, False
        self.name = "ddctl-run-c0ffee"
        self.put, self.interrupt_after = [], interrupt_after

    def put_archive(self, path, data):
        self.put.append((path, data))
        return True

    def start(self):
        self.client.log.append("start")

    def logs(self, stream=False, follow=False, stdout=True, stderr=True, tail="all"):
        if stream:

            def gen():
                for i, c in enumerate(self.chunks):
                    if self.interrupt_after is not None and i == self.interrupt_after:
                        raise KeyboardInterrupt
                    yield c

            return gen()
        return self.stderr if stderr and not stdout else b"".join(self.chunks)

    def wait(self):
        return {"StatusCode": self.code}

    def reload(self):
        pass

    def get_archive(self, path):
        self.client.log.append("get_archive " + path)
        return iter([images_tar({FINAL: b"png"}).getvalue()]), {}

    def stop(self, timeout=None):
        self.stopped = True

    def remove(self, force=False):
        self.removed = True


class FakeClient:
    def __init__(self, present=True, **ckw):
        self.present, self.ckw, self.log, self.containers_made = present, ckw, [], []
        self.images = types.SimpleNamespace(get=self._get)
        self.containers = types.SimpleNamespace(create=self._create)

    def _get(self, tag):
        if not self.present:
            raise ImageNotFound("no such image")
        return types.SimpleNamespace(
            id="sha256:1",
            attrs={"Config": {"Labels": {"io.ddctl.image": "deepdream", "io.ddctl.weights": "untrained"}}},
        )

    def _create(self, image, **kw):
        if self.ckw.get("no_binds") and "mounts" in kw:
            raise APIError(
                "400",
                explanation="invalid mount config for type \"bind\": bind source path does not exist: /tmp/x",
            )
        c = FakeContainer(self, kw, **self.ckw)
        self.containers_made.append(c)
        return c


@pytest.fixture
def cat(tmp_path):
    p = tmp_path / "cat.png"
    Image.new("RGBA", (40, 30)).save(p)
    return str(p)


def test_a_mounted_run_reports_events_and_removes_its_container(tmp_path, cat):
    client = FakeClient(chunks=OK_EVENTS, code=0)
    seen = []
    res = run_dream(
        client,
        cat,
        ONE,
        output_dir=str(tmp_path / "out"),
        ep=LOCAL,
        on_event=seen.append,
    )
    c = client.containers_made[0]
    assert res.path == str(tmp_path / "out" / FINAL) and res.transfer == "mount"
    assert c.kw["network_disabled"] and c.kw["network_mode"] == "none"
    assert c.kw["user"] == f"{os.getuid()}:{os.getgid()}" and "io.ddctl.run" in c.kw["labels"]
    mounts = {m["Target"]: m for m in c.kw["mounts"]}
    assert mounts["/images"]["Source"] == str(tmp_path / "out") and not mounts["/images"]["ReadOnly"]
    assert mounts["/input/cat.png"]["ReadOnly"] and mounts["/input/cat.png"]["Source"] == cat
    assert c.removed and c.put == []
    kinds = [e.kind for e in seen]
    assert kinds[:3] == ["fetched", "image", "transfer"] and "step" in kinds and kinds[-1] == "done"


def test_a_copied_run_puts_the_input_and_gets_the_results(tmp_path, cat):
    out = tmp_path / "out"
    out.mkdir()
    (out / FINAL).write_bytes(b"older")
    client = FakeClient(chunks=OK_EVENTS, code=0)
    res = run_dream(
        client,
        cat,
        ONE,
        output_dir=str(out),
        ep=LOCAL,
        transfer="copy",
    )
    c = client.containers_made[0]
    assert "mounts" not in c.kw and c.put[0][0] == "/"
    with tarfile.open(fileobj=io.BytesIO(c.put[0][1])) as t:
        m = t.getmember("input/cat.png")
        assert m.mode == 0o644 and m.uid == os.getuid()
    assert res.transfer == "copy" and res.path == str(out / "cat-conv1-i1-o1-2.png")
    assert (out / FINAL).read_bytes() == b"older" and c.removed


def test_the_engine_refusal_is_a_usage_error_with_its_message(tmp_path, cat):
    client = FakeClient(chunks=engine_lines("inception_9z/output"), code=2)
    with pytest.raises(UsageError) as e:
        run_dream(client, cat, output_dir=str(tmp_path / "o"), ep=LOCAL)
    assert e.value.message.startswith("unknown layer 'inception_9z/output': choose one of ")
    assert "conv1" in e.value.message
    assert client.containers_made[0].removed


def test_an_engine_crash_shows_its_last_stderr_lines(tmp_path, cat):
    client = FakeClient(chunks=[b"not json\n"], code=1, stderr=b"Traceback...\nMemoryError\n")
    with pytest.raises(DdctlError) as e:
        run_dream(client, cat, output_dir=str(tmp_path / "o"), ep=LOCAL)
    assert "exit 1" in e.value.message and "MemoryError" in e.value.message
    assert client.containers_made[0].removed


def test_ctrl_c_stops_and_removes_the_container(tmp_path, cat):
    client = FakeClient(chunks=OK_EVENTS, code=0, interrupt_after=2)
    with pytest.raises(Interrupted) as e:
        run_dream(client, cat, output_dir=str(tmp_path / "o"), ep=LOCAL)
    c = client.containers_made[0]
    assert e.value.exit_code == 130 and c.stopped and c.removed
    assert str(tmp_path / "o") in e.value.message


def test_no_image_without_build_names_the_command(tmp_path, cat):
    client = FakeClient(present=False, chunks=[], code=0)
    with pytest.raises(DdctlError) as e:
        run_dream(client, cat, output_dir=str(tmp_path / "o"), image="me/dd:1", ep=LOCAL)
    assert "`ddctl build --tag me/dd:1`" in e.value.message and client.containers_made == []


def test_no_image_is_built_first_when_allowed(tmp_path, cat):
    client = FakeClient(present=False, chunks=OK_EVENTS, code=0)
    built, seen = [], []

    def build(tag):
        built.append(tag)
        client.present = True

    run_dream(client, cat, output_dir=str(tmp_path / "o"), ep=LOCAL, build=build, on_event=seen.append)
    assert built == [DEFAULT_TAG] and "build-needed" in [e.kind for e in seen]


def test_a_bad_input_never_starts_a_container(tmp_path):
    (tmp_path / "x.jpg").write_text("<html>")
    client = FakeClient(chunks=[], code=0)
    with pytest.raises(UsageError):
        run_dream(client, str(tmp_path / "x.jpg"), output_dir=str(tmp_path / "o"), ep=LOCAL)
    assert client.containers_made == []


def test_a_daemon_that_cannot_see_the_folders_falls_back_to_the_copy(tmp_path, cat):
    client = FakeClient(chunks=OK_EVENTS, code=0, no_binds=True)
    seen = []
    res = run_dream(
        client,
        cat,
        ONE,
        output_dir=str(tmp_path / "o"),
        ep=LOCAL,
        on_event=seen.append,
    )
    assert res.transfer == "copy" and os.path.exists(res.path)
    assert [e.data["mode"] for e in seen if e.kind == "transfer"] == ["mount", "copy"]


def test_a_container_removed_by_someone_else_is_one_sentence(tmp_path, cat):
    client = FakeClient(chunks=OK_EVENTS, code=0)
    client._create_orig = client._create

    def create(image, **kw):
        c = client._create_orig(image, **kw)
        c.wait = lambda: (_ for _ in ()).throw(APIError("409", explanation="container is marked for removal"))
        return c

    client.containers.create = create
    with pytest.raises(DdctlError) as e:
        run_dream(client, cat, output_dir=str(tmp_path / "o"), ep=LOCAL)
    assert "was removed while it ran" in e.value.message
