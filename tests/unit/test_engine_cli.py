"""The container's command line as a user (or ddctl) sees it: events, files, exit codes."""

import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from test_engine_fakenet import FakeNet  # noqa: E402

from engine import cli, dream  # noqa: E402
from engine.net import LayerInfo  # noqa: E402


class TtyIO(io.StringIO):
    def isatty(self):
        return True


def run(argv, factory=None, stdout=None):
    out, err = stdout or io.StringIO(), io.StringIO()
    code = cli.main(argv, net_factory=factory or (lambda p, w: FakeNet()), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def run_json(argv, factory=None):
    code, out, err = run(argv, factory)
    return code, [json.loads(line) for line in out.splitlines()], err


@pytest.fixture
def pic(tmp_path):
    a = np.random.RandomState(0).randint(0, 256, (48, 64, 3)).astype(np.uint8)
    Image.fromarray(a).save(str(tmp_path / 'cat.jpg'))
    return tmp_path


def test_a_dream_run_emits_the_contract_events_and_writes_the_named_picture(pic):
    code, ev, err = run_json(['cat.jpg', 'conv2', '3', '2', '1.5', '--output-dir', str(pic)])
    assert code == 0 and err == ''
    start, steps, tail = ev[0], ev[1:-2], ev[-2:]
    assert start['event'] == 'start' and start['source'] == str(pic / 'cat.jpg')
    assert (start['layer'], start['width'], start['height']) == ('conv2', 64, 48)
    assert (start['octaves'], start['iterations'], start['steps_total']) == (2, 3, 6)
    assert [s['step'] for s in steps] == [1, 2, 3, 4, 5, 6]
    assert [(s['octave'], s['iteration']) for s in steps] == [(o, i) for o in (0, 1) for i in range(3)]
    assert all(s['event'] == 'step' and s['steps_total'] == 6 for s in steps)
    assert [(s['width'], s['height']) for s in steps] == [(43, 32)] * 3 + [(64, 48)] * 3
    assert all(isinstance(s['elapsed'], float) for s in steps)
    final = str(pic / 'cat-conv2-i3-o2.png')
    assert tail == [
        {'event': 'saved', 'kind': 'final', 'path': final},
        {'event': 'done', 'path': final, 'elapsed': tail[1]['elapsed']},
    ]
    with Image.open(final) as im:
        assert im.size == (64, 48) and im.mode == 'RGB'
        assert (
            np.abs(
                np.asarray(im).astype(int) - np.asarray(Image.open(str(pic / 'cat.jpg'))).astype(int)
            ).mean()
            > 1
        )


def test_defaults_are_the_notebooks(pic):
    def factory(p, w):
        return FakeNet(extra_layers=[LayerInfo('inception_4c/output', 512, 16)])

    seen = {}

    def fake_deepdream(net, img, **kw):
        seen.update(kw)
        return img.astype(np.float32)

    orig, cli.dream.deepdream = cli.dream.deepdream, fake_deepdream
    try:
        code, ev, _ = run_json(['cat.jpg', '--output-dir', str(pic)], factory)
    finally:
        cli.dream.deepdream = orig
    assert code == 0
    assert {k: seen[k] for k in ('iter_n', 'octave_n', 'octave_scale', 'end', 'step_size', 'jitter')} == dict(
        iter_n=10, octave_n=4, octave_scale=1.4, end='inception_4c/output', step_size=1.5, jitter=32
    )
    assert ev[-1]['path'].endswith('/cat-inception_4c-output-i10-o4.png')


def test_same_seed_gives_the_same_picture_and_the_engine_result(pic):
    args = ['cat.jpg', 'conv1', '2', '2', '--seed', '42', '--jitter', '4', '--output-dir', str(pic)]
    p1 = run_json(args)[1][-1]['path']
    p2 = run_json(args)[1][-1]['path']
    assert p1 != p2
    a1, a2 = np.asarray(Image.open(p1)), np.asarray(Image.open(p2))
    assert np.array_equal(a1, a2)
    img = np.asarray(Image.open(str(pic / 'cat.jpg')).convert('RGB'))
    expect = dream.to_uint8(
        dream.deepdream(
            FakeNet(), img, iter_n=2, octave_n=2, end='conv1', jitter=4, rng=np.random.RandomState(42)
        )
    )
    assert np.array_equal(a1, expect)
    other = run_json(
        ['cat.jpg', 'conv1', '2', '2', '--seed', '43', '--jitter', '4', '--output-dir', str(pic)]
    )[1][-1]['path']
    assert not np.array_equal(a1, np.asarray(Image.open(other)))


def test_runs_never_overwrite_each_other(pic):
    (pic / 'cat-conv1-i1-o1.png').write_bytes(b'an earlier run')
    paths = [
        run_json(['cat.jpg', 'conv1', '1', '1', '--output-dir', str(pic)])[1][-1]['path'] for _ in range(2)
    ]
    assert [os.path.basename(p) for p in paths] == ['cat-conv1-i1-o1-2.png', 'cat-conv1-i1-o1-3.png']
    assert (pic / 'cat-conv1-i1-o1.png').read_bytes() == b'an earlier run'


def test_name_and_absolute_source(pic):
    other = pic / 'elsewhere'
    other.mkdir()
    code, ev, _ = run_json(
        [str(pic / 'cat.jpg'), 'conv1', '1', '1', '--name', 'sky', '--output-dir', str(other)]
    )
    assert code == 0 and ev[-1]['path'] == str(other / 'sky-conv1-i1-o1.png')


def test_save_steps_uses_the_2015_names_in_a_folder_named_after_the_final_picture(pic):
    code, ev, _ = run_json(['cat.jpg', 'conv2', '2', '3', '--save-steps', '--output-dir', str(pic)])
    assert code == 0
    steps_dir = pic / 'cat-conv2-i2-o3-steps'
    names = sorted(os.listdir(str(steps_dir)))
    assert names == sorted('conv2-%d-%d.png' % (o, i) for o in range(3) for i in range(2))
    saved = [e for e in ev if e['event'] == 'saved']
    assert [e['kind'] for e in saved] == ['step'] * 6 + ['final']
    assert saved[0]['path'] == str(steps_dir / 'conv2-0-0.png')
    assert saved[-1]['path'] == str(pic / 'cat-conv2-i2-o3.png')
    sizes = dream.octave_shapes(48, 64, 3, 1.4)[::-1]
    for o in range(3):
        with Image.open(str(steps_dir / ('conv2-%d-1.png' % o))) as im:
            assert im.size == sizes[o][::-1]
    # a second run gets its own picture and its own folder
    ev2 = run_json(['cat.jpg', 'conv2', '2', '3', '--save-steps', '--output-dir', str(pic)])[1]
    assert ev2[-1]['path'] == str(pic / 'cat-conv2-i2-o3-2.png')
    assert len(os.listdir(str(pic / 'cat-conv2-i2-o3-2-steps'))) == 6
    # and a run without steps does not take a name whose steps folder belongs to another run
    os.remove(str(pic / 'cat-conv2-i2-o3.png'))
    ev3 = run_json(['cat.jpg', 'conv2', '2', '3', '--output-dir', str(pic)])[1]
    assert ev3[-1]['path'] == str(pic / 'cat-conv2-i2-o3-3.png')


def test_list_layers_prints_dreamable_blobs_only(pic):
    junk = [
        LayerInfo(n, 3, 1)
        for n in (
            'data',
            'inception_4c/relu_1x1',
            'pool5/7x7_s1',
            'pool5/drop_7x7_s1',
            'loss3/classifier',
            'prob',
        )
    ]
    code, out, err = run(['--list-layers'], lambda p, w: FakeNet(extra_layers=junk))
    assert code == 0 and err == '' and len(out.splitlines()) == 1
    assert json.loads(out) == {
        'layers': [
            {'name': 'conv1', 'channels': 8, 'stride': 2},
            {'name': 'conv2', 'channels': 12, 'stride': 4},
            {'name': 'conv3', 'channels': 16, 'stride': 8},
        ]
    }


def test_unknown_layer_is_refused_with_the_list(pic):
    code, ev, err = run_json(['cat.jpg', 'inception_4c/relu_1x1', '--output-dir', str(pic)])
    assert code == 2 and err == '' and len(ev) == 1
    assert ev[0]['code'] == 'unknown_layer' and 'conv1, conv2, conv3' in ev[0]['message']
    code, ev, _ = run_json(['cat.jpg', '20', '--output-dir', str(pic)])
    assert code == 2 and 'LAYER comes before ITERATIONS' in ev[0]['message']
    assert os.listdir(str(pic)) == ['cat.jpg']


def test_too_many_octaves_names_the_largest_count_that_works(pic):
    # 64x48 with scale 1.4, short side: 48 34 24 17 12 9 6 ...; conv3 needs 8 px
    code, ev, err = run_json(['cat.jpg', 'conv3', '1', '9', '--output-dir', str(pic)])
    assert code == 2 and err == '' and len(ev) == 1
    assert ev[0]['code'] == 'too_many_octaves'
    assert 'use at most 6 octaves' in ev[0]['message']
    assert run_json(['cat.jpg', 'conv3', '1', '6', '--output-dir', str(pic)])[0] == 0
    assert run_json(['cat.jpg', 'conv3', '1', '7', '--output-dir', str(pic)])[0] == 2


def test_picture_smaller_than_the_layer_needs(tmp_path):
    Image.new('RGB', (5, 30)).save(str(tmp_path / 'thin.png'))
    code, ev, _ = run_json(['thin.png', 'conv3', '1', '1', '--output-dir', str(tmp_path)])
    assert code == 2 and ev[0]['code'] == 'bad_input' and 'needs at least 8' in ev[0]['message']


@pytest.mark.parametrize(
    'args,words',
    [
        (['conv1', '0'], 'ITERATIONS'),
        (['conv1', 'ten'], 'ITERATIONS'),
        (['conv1', '2', '-1'], 'OCTAVES'),
        (['conv1', '2', '2', 'nan'], 'OCTAVE_SCALE'),
        (['conv1', '2', '2', '0.5'], 'OCTAVE_SCALE'),
        (['--step-size', '0'], '--step-size'),
        (['--step-size', 'inf'], '--step-size'),
        (['--jitter', '-3'], '--jitter'),
        (['--seed', 'x'], '--seed'),
        (['--max-size', '0'], '--max-size'),
        (['--name', 'a/b'], '--name'),
        (['--progress', 'fancy'], '--progress'),
        (['--bogus'], '--bogus'),
        (['conv1', '1', '1', '1.4', 'extra'], 'extra'),
    ],
)
def test_bad_arguments_exit_2_with_one_json_line(pic, args, words):
    code, out, err = run(['cat.jpg'] + args + ['--output-dir', str(pic)])
    assert code == 2 and err == ''
    (line,) = out.splitlines()
    e = json.loads(line)
    assert e['event'] == 'error' and e['code'] == 'bad_input' and words in e['message']


def test_no_source_is_refused(tmp_path):
    code, ev, _ = run_json(['--output-dir', str(tmp_path)])
    assert code == 2 and 'give a picture' in ev[0]['message']


def test_text_progress_on_a_terminal_and_errors_on_stderr(pic):
    code, out, err = run(['cat.jpg', 'conv1', '2', '1', '--output-dir', str(pic)], stdout=TtyIO())
    assert code == 0 and err == ''
    lines = out.splitlines()
    assert lines[0].startswith('dreaming on ') and 'layer conv1' in lines[0]
    assert lines[1].startswith('step   1/2') and lines[-1].startswith('done in ')
    assert not any(line.startswith('{') for line in lines)
    code, out, err = run(['cat.jpg', 'nope', '--progress', 'text', '--output-dir', str(pic)])
    assert code == 2 and out == '' and err.startswith('error: unknown layer') and err.count('\n') == 1


def test_json_forced_on_a_terminal(pic):
    code, out, _ = run(
        ['cat.jpg', 'conv1', '1', '1', '--progress', 'json', '--output-dir', str(pic)], stdout=TtyIO()
    )
    assert code == 0 and all(json.loads(line) for line in out.splitlines())


def test_unexpected_failure_is_an_internal_error_event(pic):
    def broken(p, w):
        raise ZeroDivisionError('boom')

    code, ev, err = run_json(['cat.jpg', '--output-dir', str(pic)], broken)
    assert code == 1 and ev == [
        {'event': 'error', 'code': 'internal', 'message': 'internal error: ZeroDivisionError: boom'}
    ]
    assert 'Traceback' in err


class StopAfter(FakeNet):
    """Interrupts the run during the n-th step, like ^C or `docker stop`."""

    def __init__(self, n, how):
        FakeNet.__init__(self)
        self.n, self.how = n, how

    def input_gradient(self, data, end):
        if self.calls + 1 == self.n:
            if self.how == 'sigterm':
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise KeyboardInterrupt
        return FakeNet.input_gradient(self, data, end)


@pytest.mark.parametrize('how', ['ctrl-c', 'sigterm'])
def test_interrupt_exits_130_keeping_the_steps_already_saved(pic, how):
    before = signal.getsignal(signal.SIGTERM)
    code, ev, err = run_json(
        ['cat.jpg', 'conv1', '3', '2', '--save-steps', '--output-dir', str(pic)],
        lambda p, w: StopAfter(4, how),
    )
    assert code == 130 and 'interrupted' in err
    assert signal.getsignal(signal.SIGTERM) == before
    steps = sorted(os.listdir(str(pic / 'cat-conv1-i3-o2-steps')))
    assert steps == ['conv1-0-0.png', 'conv1-0-1.png', 'conv1-0-2.png']
    for s in steps:
        Image.open(str(pic / 'cat-conv1-i3-o2-steps' / s)).load()  # complete files
    assert not (pic / 'cat-conv1-i3-o2.png').exists()
    assert all(e['event'] != 'error' for e in ev)


def test_interrupt_before_the_first_step_leaves_no_empty_steps_folder(pic):
    code, _, _ = run_json(
        ['cat.jpg', 'conv1', '3', '2', '--save-steps', '--output-dir', str(pic)],
        lambda p, w: StopAfter(1, 'ctrl-c'),
    )
    assert code == 130 and os.listdir(str(pic)) == ['cat.jpg']


def test_url_source_is_fetched_and_named_after_its_file(tmp_path, http_server):
    buf = io.BytesIO()
    Image.new('RGBA', (30, 20), (0, 128, 0, 255)).save(buf, 'PNG')
    server = http_server(
        {
            '/pics/sky%20blue.png': (200, {'Content-Type': 'image/png'}, buf.getvalue()),
            '/page.jpg': (200, {'Content-Type': 'text/html; charset=utf-8'}, b'<html>login</html>'),
        }
    ).url
    code, ev, _ = run_json(
        [server + '/pics/sky%20blue.png', 'conv1', '1', '1', '--output-dir', str(tmp_path)]
    )
    assert code == 0 and ev[0]['source'].endswith('/pics/sky%20blue.png')
    assert ev[-1]['path'] == str(tmp_path / 'sky_blue-conv1-i1-o1.png')
    code, ev, _ = run_json([server + '/page.jpg', '--output-dir', str(tmp_path)])
    assert code == 2 and 'text/html, not a picture' in ev[0]['message']
    code, ev, _ = run_json([server + '/missing.jpg', '--output-dir', str(tmp_path)])
    assert code == 2 and 'HTTP 404' in ev[0]['message']
    code, ev, _ = run_json(['ftp://example.invalid/x.jpg', '--output-dir', str(tmp_path)])
    assert code == 2 and 'http' in ev[0]['message']


def test_python_dash_m_engine_runs_without_caffe_and_refuses_cleanly(pic):
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run(
        [
            sys.executable,
            '-m',
            'engine',
            'cat.jpg',
            '--output-dir',
            str(pic),
            '--weights',
            str(pic / 'missing.caffemodel'),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and r.stderr == ''
    (line,) = r.stdout.splitlines()
    assert json.loads(line)['message'].startswith('weights file not found: ')
    r = subprocess.run(
        [sys.executable, '-m', 'engine', '--help'],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and 'OCTAVE_SCALE' in r.stdout and '--save-steps' in r.stdout


def test_weights_default_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv('DDCTL_WEIGHTS', '/w/x.caffemodel')
    monkeypatch.setenv('DDCTL_PROTOTXT', '/w/deploy.prototxt')
    a = cli.parse_args(['x.jpg'])
    assert (a.weights, a.prototxt) == ('/w/x.caffemodel', '/w/deploy.prototxt')
    monkeypatch.delenv('DDCTL_WEIGHTS')
    assert cli.parse_args(['x.jpg']).weights == '/opt/ddctl/model/bvlc_googlenet.caffemodel'


def test_flags_may_sit_between_the_positional_arguments(pic):
    code, ev, _ = run_json(['cat.jpg', '--seed', '3', 'conv2', '--output-dir', str(pic), '2', '1'])
    assert code == 0 and ev[0]['seed'] == 3 and ev[0]['steps_total'] == 2
    assert ev[-1]['path'] == str(pic / 'cat-conv2-i2-o1.png')


def test_small_pages_turns_numpy_s_huge_pages_off_unless_the_user_chose(monkeypatch):
    """The engine asks numpy for small pages (a whole dream ran 5-7% faster on this
    project's machine), but a NUMPY_MADVISE_HUGEPAGE the user set wins."""
    multiarray = np._core.multiarray
    calls = []
    monkeypatch.setattr(multiarray, '_set_madvise_hugepage', lambda on: calls.append(on) or True)
    cli.small_pages(env={})
    assert calls == [False]
    cli.small_pages(env={'NUMPY_MADVISE_HUGEPAGE': '1'})
    assert calls == [False]
