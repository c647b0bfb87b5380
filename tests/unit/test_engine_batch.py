"""Batch mode of the engine (engine/batch.py) as ddctl and a user see it: one net, events,
files, manifest.jsonl, skipping, failures that do not stop the others; and --tile."""

import io
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_engine_fakenet import FakeNet  # noqa: E402

from engine import batch, cli, dream, tiling  # noqa: E402


def run(argv, nets=None):
    out, err = io.StringIO(), io.StringIO()

    def factory(p, w):
        net = FakeNet()
        if nets is not None:
            nets.append(net)
        return net

    code = cli.main(argv, net_factory=factory, stdout=out, stderr=err)
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def save(path, h=40, w=56, seed=0):
    a = np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)
    Image.fromarray(a).save(str(path))


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / 'holiday'
    src.mkdir()
    for i, name in enumerate(['a.jpg', 'b.png', 'c.jpg', 'e.JPG', 'f.webp']):
        save(src / name, seed=i)
    (src / 'd.jpg').write_text('<html>not a picture</html>')  # the broken one
    (src / 'notes.txt').write_text('not an input')
    (src / '.hidden.jpg').write_text('not an input')
    out = tmp_path / 'out'
    out.mkdir()
    return src, out


def items_of(ev, status=None):
    return [e for e in ev if e['event'] == 'item' and (status is None or e['status'] == status)]


def manifest(out):
    with open(str(out / 'manifest.jsonl')) as f:
        return [json.loads(line) for line in f]


def test_a_folder_dreams_every_picture_with_one_net_and_lists_the_broken_one(folder):
    src, out = folder
    nets = []
    code, ev, err = run(
        ['--batch', '--output-dir', str(out), '--seed', '3', '--', str(src), 'conv2', '2', '2'], nets
    )
    assert code == batch.EXIT_SOME_FAILED == 3
    assert len(nets) == 1  # the net is loaded once for the batch
    assert ev[0] == {'event': 'batch', 'total': 6}
    done = items_of(ev, 'done')
    assert [e['source'] for e in items_of(ev, 'start')] == [
        'a.jpg',
        'b.png',
        'c.jpg',
        'd.jpg',
        'e.JPG',
        'f.webp',
    ]
    assert [e['index'] for e in items_of(ev, 'start')] == [1, 2, 3, 4, 5, 6]
    assert len(done) == 5 and all(e['total'] == 6 for e in done)
    names = sorted(os.listdir(str(out)))
    assert names == sorted(['manifest.jsonl'] + ['%s-conv2-i2-o2.png' % s for s in ('a', 'b', 'c', 'e', 'f')])
    failed = items_of(ev, 'failed')
    assert [e['source'] for e in failed] == ['d.jpg']
    assert 'web page' in failed[0]['record']['error']
    last = ev[-1]
    assert last['event'] == 'batch_done' and (last['done'], last['failed'], last['skipped']) == (5, 1, 0)
    assert last['failures'] == [{'source': 'd.jpg', 'error': failed[0]['record']['error']}]
    # every picture's own events are those of a single run
    starts = [e for e in ev if e['event'] == 'start']
    assert len(starts) == 5 and all(s['steps_total'] == 4 and s['seed'] == 3 for s in starts)
    # the manifest: one line per dreamed or failed picture, in order
    m = manifest(out)
    assert [r['source'] for r in m] == ['a.jpg', 'b.png', 'c.jpg', 'd.jpg', 'e.JPG', 'f.webp']
    assert [r['status'] for r in m] == ['done', 'done', 'done', 'failed', 'done', 'done']
    assert m[0]['output'] == 'a-conv2-i2-o2.png' and m[0]['seed'] == 3 and m[0]['seconds'] >= 0
    assert m[0]['options'] == {
        'layer': 'conv2',
        'iterations': 2,
        'octaves': 2,
        'octave_scale': 1.4,
        'step_size': 1.5,
        'jitter': 32,
        'max_size': None,
        'tile': 'auto',
    }
    assert m[3]['output'] is None and m[3]['error'] == failed[0]['record']['error']
    # a picture of the batch is the picture a single run makes
    img = np.asarray(Image.open(str(src / 'a.jpg')).convert('RGB'))
    expect = dream.to_uint8(
        dream.deepdream(FakeNet(), img, iter_n=2, octave_n=2, end='conv2', rng=np.random.RandomState(3))
    )
    assert np.array_equal(np.asarray(Image.open(str(out / 'a-conv2-i2-o2.png'))), expect)


def test_a_second_run_skips_what_exists_and_force_redoes_it_beside(folder):
    src, out = folder
    args = ['--batch', '--output-dir', str(out), '--', str(src), 'conv1', '1', '1']
    run(args)
    before = {n: os.path.getmtime(str(out / n)) for n in os.listdir(str(out)) if n.endswith('.png')}
    code, ev, _ = run(args)
    assert code == 3  # the broken one is tried again, and fails again
    assert [e['source'] for e in items_of(ev, 'skipped')] == ['a.jpg', 'b.png', 'c.jpg', 'e.JPG', 'f.webp']
    assert not [e for e in ev if e['event'] == 'start']  # no dreaming at all
    assert {n: os.path.getmtime(str(out / n)) for n in os.listdir(str(out)) if n.endswith('.png')} == before
    assert [r['status'] for r in manifest(out)] == ['done'] * 3 + ['failed'] + ['done'] * 2 + ['failed']
    code, ev, _ = run(['--force'] + args)
    assert len(items_of(ev, 'done')) == 5
    assert (out / 'a-conv1-i1-o1-2.png').exists() and os.path.getmtime(
        str(out / 'a-conv1-i1-o1.png')
    ) == before['a-conv1-i1-o1.png']


def test_all_good_exits_0_and_results_in_the_folder_are_not_inputs(tmp_path):
    for n in ('x.jpg', 'y.jpg'):
        save(tmp_path / n)
    code, ev, _ = run(['--batch', '--output-dir', str(tmp_path), '--', '.', 'conv1', '1', '1'])
    assert code == 0 and ev[-1]['done'] == 2
    code, ev, _ = run(['--batch', '--force', '--output-dir', str(tmp_path), '--', '.', 'conv1', '1', '1'])
    assert ev[0]['total'] == 2  # x-conv1-i1-o1.png is a result, not a new input


def test_a_list_file_of_sources_and_json_lines_with_names(tmp_path):
    save(tmp_path / 'p.jpg')
    save(tmp_path / 'q.png', seed=1)
    (tmp_path / 'list.txt').write_text(
        '# my pictures\n\np.jpg\n'
        + json.dumps(
            {
                'source': str(tmp_path / 'q.png'),
                'name': 'holiday-2',
                'shown': 'https://example.org/q.png?token=…',
            }
        )
        + '\nmissing.jpg\n'
    )
    code, ev, _ = run(['--batch', '--output-dir', str(tmp_path), '--', 'list.txt', 'conv1', '1', '1'])
    assert code == 3
    assert [(e['source'], e['status']) for e in items_of(ev) if e['status'] != 'start'] == [
        ('p.jpg', 'done'),
        ('https://example.org/q.png?token=…', 'done'),
        ('missing.jpg', 'failed'),
    ]
    assert (tmp_path / 'holiday-2-conv1-i1-o1.png').exists()
    assert manifest(tmp_path)[1]['output'] == 'holiday-2-conv1-i1-o1.png'


def test_a_picture_too_small_for_the_octaves_fails_alone(tmp_path):
    save(tmp_path / 'big.jpg', 64, 64)
    save(tmp_path / 'tiny.jpg', 9, 9)
    code, ev, _ = run(['--batch', '--output-dir', str(tmp_path), '--', '.', 'conv3', '1', '2'])
    assert code == 3
    assert [(e['source'], e['status']) for e in items_of(ev) if e['status'] != 'start'] == [
        ('big.jpg', 'done'),
        ('tiny.jpg', 'failed'),
    ]
    assert 'tiny' not in ' '.join(os.listdir(str(tmp_path))).replace('tiny.jpg', '')


@pytest.mark.parametrize(
    'args,words',
    [
        (['--', 'nowhere', 'conv1'], 'neither'),
        (['--', 'empty', 'conv1'], 'holds no pictures'),
        (['--', '.', 'nolayer'], 'unknown layer'),
    ],
)
def test_whole_batch_refusals_exit_2(tmp_path, args, words):
    (tmp_path / 'empty').mkdir()
    save(tmp_path / 'x.jpg')
    code, ev, _ = run(['--batch', '--output-dir', str(tmp_path)] + args)
    assert code == 2 and ev[-1]['event'] == 'error' and words in ev[-1]['message']


def test_an_interrupt_keeps_the_finished_pictures_and_their_manifest_lines(folder, monkeypatch):
    src, out = folder
    real, calls = cli.dream_picture, []

    def stop_on_third(*a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(cli, 'dream_picture', stop_on_third)
    code, ev, err = run(['--batch', '--output-dir', str(out), '--', str(src), 'conv1', '1', '1'])
    assert code == 130
    assert sorted(n for n in os.listdir(str(out)) if n.endswith('.png')) == [
        'a-conv1-i1-o1.png',
        'b-conv1-i1-o1.png',
    ]
    assert [r['source'] for r in manifest(out)] == ['a.jpg', 'b.png']


def test_text_progress_of_a_batch(folder):
    src, out = folder
    o, e = io.StringIO(), io.StringIO()
    cli.main(['--batch', '--progress', 'text', '--output-dir', str(out), '--', str(src), 'conv1', '1', '1'],
             net_factory=lambda p, w: FakeNet(), stdout=o, stderr=e)  # fmt: skip
    text = o.getvalue()
    assert 'batch of 6 pictures' in text and '[4/6] failed d.jpg: ' in text
    assert 'batch done in' in text and '5 dreamed, 1 failed, 0 skipped' in text


def test_redact_keeps_no_secret():
    assert batch.redact('https://user:pw@example.org:8080/a/b.jpg?sig=SECRET&x=1#frag') == (
        'https://example.org:8080/a/b.jpg?sig=…&x=…'
    )
    assert batch.redact('holiday/a.jpg') == 'holiday/a.jpg'


# -----------------------------------------------------------------------------
# --tile


def test_tile_auto_dreams_small_pictures_whole_and_big_ones_in_tiles():
    assert tiling.resolve_tile('auto', 1024, 1280) == 0
    assert tiling.resolve_tile('auto', 4000, 6000) == tiling.DEFAULT_TILE
    assert tiling.resolve_tile(512, 100, 100) == 512 and tiling.resolve_tile(0, 9000, 9000) == 0


def test_tile_option_reaches_the_dream_and_is_checked(tmp_path, monkeypatch):
    save(tmp_path / 'w.jpg', 300, 400)
    seen = []
    real = dream.deepdream
    monkeypatch.setattr(cli.dream, 'deepdream', lambda *a, **kw: (seen.append(kw['tile']), real(*a, **kw))[1])
    assert run(['w.jpg', 'conv1', '1', '1', '--tile', '256', '--output-dir', str(tmp_path)])[0] == 0
    assert run(['w.jpg', 'conv1', '1', '1', '--output-dir', str(tmp_path)])[0] == 0
    assert seen == [256, 0]
    for bad, words in (('100', 'at least 256'), ('-1', 'from 0 to'), ('x', 'whole number')):
        code, ev, _ = run(['w.jpg', '--tile', bad, '--output-dir', str(tmp_path)])
        assert code == 2 and words in ev[-1]['message'], ev
