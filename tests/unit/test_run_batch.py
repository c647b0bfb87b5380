"""`ddctl run` on many pictures, the parts that need no Docker: sources, names, skipping,
staging, the engine's argv (parsed by the engine's own parser), memory limit, OOM sentence."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from ddctl import containers
from ddctl.errors import UsageError
from ddctl.run import batch
from ddctl.run.container import Outcome
from ddctl.run.options import DreamOptions, batch_command, engine_command
from engine import cli as engine_cli


def save(path, seed=0):
    Image.fromarray(np.random.RandomState(seed).randint(0, 256, (30, 40, 3)).astype(np.uint8)).save(str(path))


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "holiday"
    d.mkdir()
    for i, n in enumerate(["b.jpg", "a.png", "c.JPG"]):
        save(d / n, i)
    (d / "broken.jpg").write_text("<html>")
    (d / "notes.txt").write_text("x")
    (d / ".x.jpg").write_text("x")
    (d / "a-inception_4c-output-i10-o4.png").write_text("an earlier result")
    return d


def test_what_counts_as_many_pictures(folder, tmp_path):
    (tmp_path / "list.txt").write_text("a\n")
    assert batch.is_batch_source(str(folder)) and batch.is_batch_source(str(tmp_path / "list.txt"))
    assert not batch.is_batch_source(str(folder / "a.png"))
    assert not batch.is_batch_source("https://example.org/pics/")
    assert not batch.is_batch_source(str(tmp_path / "missing"))


def test_a_folder_gives_its_pictures_by_name_not_results_nor_hidden_files(folder):
    got = [os.path.basename(p) for p in batch.expand_sources(str(folder))]
    assert got == ["a.png", "b.jpg", "broken.jpg", "c.JPG"]


def test_a_list_gives_urls_and_files_relative_to_the_list(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "l.txt").write_text(
        "# holiday\n\nhttps://example.org/x.jpg\n  pic.jpg  \n/abs/y.png\n"
    )
    assert batch.expand_sources(str(tmp_path / "sub" / "l.txt")) == [
        "https://example.org/x.jpg",
        str(tmp_path / "sub" / "pic.jpg"),
        "/abs/y.png",
    ]


def test_nothing_to_dream_is_one_usage_line(tmp_path):
    (tmp_path / "e").mkdir()
    (tmp_path / "l.txt").write_text("# nothing\n")
    for src in (tmp_path / "e", tmp_path / "l.txt"):
        with pytest.raises(UsageError, match="nothing to dream"):
            batch.expand_sources(str(src))


def test_plan_names_results_like_the_engine_skips_existing_and_keeps_twins_apart(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    opts = DreamOptions(layer="inception_3b/output", iterations=2, octaves=3)
    (out / "a-inception_3b-output-i2-o3.png").write_text("done before")
    srcs = ["/p/a.jpg", "/p/b.jpg", "https://u:pw@example.org/x/b.jpg?sig=SECRET", "/q/a.jpg"]
    items = batch.plan(srcs, opts, str(out))
    assert [i.stem for i in items] == ["a", "b", "b-2", "a-2"]
    assert [i.final for i in items] == [
        "a-inception_3b-output-i2-o3.png",
        "b-inception_3b-output-i2-o3.png",
        "b-2-inception_3b-output-i2-o3.png",
        "a-2-inception_3b-output-i2-o3.png",
    ]
    assert [i.status for i in items] == ["skipped", "pending", "pending", "pending"]
    assert items[2].shown == "https://example.org/x/b.jpg?sig=…" and "SECRET" not in repr(items[2].shown)
    assert [i.status for i in batch.plan(srcs, opts, str(out), force=True)] == ["pending"] * 4


def test_prepare_stages_inputs_and_the_engine_list_and_fails_bad_pictures_here(folder, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "out"
    events = []
    opts = DreamOptions(layer="conv1", iterations=1, octaves=1)
    job = batch.prepare_batch(str(folder), str(work), opts, str(out), on_event=events.append)
    assert [(i.shown, i.status) for i in job.items] == [
        ("a.png", "pending"),
        ("b.jpg", "pending"),
        ("broken.jpg", "failed"),
        ("c.JPG", "pending"),
    ]
    assert "HTML" in job.items[2].error
    rows = [json.loads(line) for line in open(os.path.join(job.stage, batch.LIST_NAME))]
    assert [(r["name"], r["shown"]) for r in rows] == [("a", "a.png"), ("b", "b.jpg"), ("c", "c.JPG")]
    for r in rows:
        assert r["source"].startswith("/input/")
        assert os.path.isfile(os.path.join(job.stage, os.path.basename(r["source"])))
    # the one refused here is in the manifest already, in its format
    (rec,) = [json.loads(line) for line in open(str(out / "manifest.jsonl"))]
    assert rec["source"] == "broken.jpg" and rec["status"] == "failed" and rec["output"] is None
    assert set(rec) >= {"source", "output", "options", "seed", "seconds", "status", "error"}
    assert events[-1].kind == "plan" and events[-1].data["to_dream"] == 3


def test_the_batch_argv_is_understood_by_the_engine():
    opts = DreamOptions(layer="inception_3b/output", iterations=3, octaves=2, tile=512, max_size=800, seed=4)
    a = engine_cli.parse_args(batch_command("/input/batch.jsonl", opts, force=True))
    assert (a.batch, a.force, a.source, a.layer, a.iterations, a.octaves) == (
        True,
        True,
        "/input/batch.jsonl",
        "inception_3b/output",
        3,
        2,
    )
    assert (a.tile, a.max_size, a.seed) == (512, 800, 4)
    assert engine_cli.parse_args(engine_command("/input/x.jpg", "x", DreamOptions())).tile == "auto"
    assert engine_cli.parse_args(engine_command("/input/x.jpg", "x", DreamOptions(tile=0))).tile == 0


def test_redaction_is_the_engines():
    from engine import batch as engine_batch

    for url in ("https://a:b@h.org:81/p/q.jpg?t=1&u=2", "http://h/x.png", "x/y.jpg"):
        assert batch.redact(url) == engine_batch.redact(url)


def test_memory_limit_default_env_and_refusals():
    assert containers.memory_limit({}) == 4 << 30
    assert containers.memory_limit({"DDCTL_MEMORY": "3500m"}) == 3500 << 20
    assert containers.memory_limit({"DDCTL_MEMORY": "6G"}) == 6 << 30
    for bad in ("lots", "10m", "-1g"):
        with pytest.raises(UsageError, match="DDCTL_MEMORY"):
            containers.memory_limit({"DDCTL_MEMORY": bad})
    s = containers.engine_settings(
        "run", "abc", ["x"], memory=3 << 30, client=None
    )  # memory given: no daemon asked
    assert s["mem_limit"] == s["memswap_limit"] == 3 << 30


def test_a_container_killed_for_memory_is_one_sentence_saying_what_to_do():
    msg = Outcome(code=137, state={"OOMKilled": True}, memory=4 << 30).failure().message
    assert "ran out of memory (its limit is 4.0 GB)" in msg
    for hint in ("--max-size", "--tile", "DDCTL_MEMORY"):
        assert hint in msg
    assert "exit 137" not in msg
    other = Outcome(code=137, state={"OOMKilled": False, "Status": "exited"}).failure().message
    assert "killed" in other and "memory" not in other


def test_a_list_naming_an_address_that_does_not_parse_fails_that_line_only(tmp_path):
    """`http://[::1` in a list (urlsplit refuses it) was a ValueError traceback."""
    Image.new("RGB", (64, 48)).save(tmp_path / "ok.png")
    (tmp_path / "l.txt").write_text("ok.png\nhttp://u:pw@[::1/p.jpg?sig=SECRET\n")
    work = tmp_path / "work"
    work.mkdir()
    job = batch.prepare_batch(str(tmp_path / "l.txt"), str(work), DreamOptions(), str(tmp_path / "out"))
    failed = [i for i in job.items if i.status == "failed"]
    assert len(failed) == 1 and "is not a valid address" in failed[0].error
    assert failed[0].shown == "http://***@[::1/p.jpg?***" and "SECRET" not in failed[0].error
    assert [i.stem for i in job.items if i.status == "pending"] == ["ok"]


def test_zoom_resume_with_an_address_that_does_not_parse_is_one_line(tmp_path):
    from ddctl.zoom import find_resume

    with pytest.raises(UsageError, match="no unfinished zoom"):
        find_resume(str(tmp_path), "http://[::1")
