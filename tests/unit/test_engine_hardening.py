"""Issue 9 on the engine's side: `--` before positionals, NaN/inf, SIGHUP, stdin watch, max-size."""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from test_engine_fakenet import FakeNet  # noqa: E402

from engine import cli  # noqa: E402


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, net_factory=lambda p, w: FakeNet(), stdout=out, stderr=err)
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


@pytest.fixture
def pic(tmp_path):
    a = np.random.RandomState(0).randint(0, 256, (48, 64, 3)).astype(np.uint8)
    Image.fromarray(a).save(str(tmp_path / 'cat.jpg'))
    return tmp_path


def test_positionals_after_double_dash_are_never_options(pic):
    target = pic / 'X'
    code, ev, _ = run(['--output-dir', str(pic), '--', 'cat.jpg', '--output-dir=%s' % target, '2', '2'])
    assert code == 2 and ev[-1]['code'] == 'unknown_layer'
    assert '--output-dir=' in ev[-1]['message']
    assert not target.exists()
    code, ev, _ = run(['--output-dir', str(pic), '--', 'cat.jpg', '--prototxt=/nonexistent'])
    assert code == 2 and ev[-1]['code'] == 'unknown_layer'


def test_double_dash_dream_works_and_counts_its_positionals(pic):
    code, ev, _ = run(['--output-dir', str(pic), '--name', 'n', '--', 'cat.jpg', 'conv2', '2', '2', '1.5'])
    assert code == 0 and ev[-1]['event'] == 'done'
    assert (ev[0]['layer'], ev[0]['iterations'], ev[0]['octaves']) == ('conv2', 2, 2)
    code, ev, _ = run(['--output-dir', str(pic), '--', 'cat.jpg', 'conv2', '2', '2', '1.5', 'more'])
    assert code == 2 and 'more' in ev[-1]['message']
    code, ev, _ = run(['--output-dir', str(pic), 'cat.jpg', '--', 'other.jpg'])
    assert code == 2 and 'not both' in ev[-1]['message']


@pytest.mark.parametrize(
    'args,words',
    [
        (['conv1', '2', '2', 'inf'], 'OCTAVE_SCALE'),
        (['conv1', '2', '2', '-inf'], 'OCTAVE_SCALE'),
        (['conv1', '2', '2', '101'], 'OCTAVE_SCALE'),
        (['--step-size', 'nan'], '--step-size'),
        (['--step-size', '-inf'], '--step-size'),
        (['--step-size', '1e400'], '--step-size'),
        (['--jitter', '100001'], '--jitter'),
        (['--seed', '-1'], '--seed'),
        (['--seed', '99999999999'], '--seed'),
        (['conv1', '200000'], 'ITERATIONS'),
    ],
)
def test_every_number_outside_the_table_is_refused_in_one_line(pic, args, words):
    opts = [x for x in args if x.startswith('--')] and args
    pos = [] if opts else args
    code, ev, err = run(['--output-dir', str(pic)] + (opts or []) + ['--', 'cat.jpg'] + pos)
    assert code == 2 and err == '' and len(ev) == 1
    assert ev[0]['code'] == 'bad_input' and words in ev[0]['message']


def test_a_picture_shrunk_by_max_size_says_so(tmp_path):
    Image.new('RGB', (500, 10)).save(str(tmp_path / 'thin.png'))
    code, ev, _ = run(
        ['--output-dir', str(tmp_path), '--max-size', '128', '--', 'thin.png', 'conv3', '1', '1']
    )
    assert code == 2
    assert '--max-size 128 shrank the picture to 128x3' in ev[-1]['message']


def test_watch_stdin_calls_back_on_end_of_file():
    r, w = os.pipe()
    closed = threading.Event()
    reader = os.fdopen(r, 'rb')  # kept: its end would close the fd
    cli.watch_stdin(reader, closed.set)
    os.write(w, b'still here')
    assert not closed.wait(0.3)
    os.close(w)
    assert closed.wait(5)


def _engine(args, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen(
        [sys.executable, '-c', 'import sys; from engine.cli import main; sys.exit(main())'] + args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def _wait_until_reading(p, fifo):
    """Block until the engine has opened `fifo` (the picture); return our writing end.

    A FIFO opens for writing (non-blocking) only once a reader has it open: then the engine
    is past its start-up (signal handlers and the stdin watch set) and waits on the picture,
    however slow the machine. No fixed sleep to lose the race against.
    """
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and p.poll() is None:
        try:
            return os.open(str(fifo), os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise AssertionError('the engine never opened the picture: %r' % (p.communicate()[1][-2000:],))


def test_engine_exits_when_its_stdin_closes_with_exit_with_stdin(tmp_path):
    # no picture: the engine would refuse at once, so watch a slow --list-layers stand-in:
    # a SOURCE that is a FIFO blocks the engine in open() until the stdin watch stops it.
    fifo = tmp_path / 'slow.png'
    os.mkfifo(str(fifo))
    p = _engine(['--exit-with-stdin', '--output-dir', str(tmp_path), '--', 'slow.png'], stdin=subprocess.PIPE)
    writer = _wait_until_reading(p, fifo)
    try:
        out, err = p.communicate(timeout=90)  # closes stdin
    finally:
        p.kill()
        os.close(writer)
    assert p.returncode == 130, err
    assert b'interrupted' in err


@pytest.mark.parametrize('sig', [signal.SIGHUP, signal.SIGTERM])
def test_sighup_and_sigterm_interrupt_like_ctrl_c(tmp_path, sig):
    fifo = tmp_path / 'slow.png'
    os.mkfifo(str(fifo))
    p = _engine(['--output-dir', str(tmp_path), '--', 'slow.png'])
    writer = _wait_until_reading(p, fifo)
    try:
        p.send_signal(sig)
        out, err = p.communicate(timeout=90)
    finally:
        p.kill()
        os.close(writer)
    assert p.returncode == 130, err


def test_a_read_only_numba_cache_is_copied_to_a_writable_folder(tmp_path):
    src = tmp_path / 'cache'
    (src / 'engine_x').mkdir(parents=True)
    (src / 'engine_x' / 'k.nbi').write_bytes(b'index')
    env = {'NUMBA_CACHE_DIR': str(src)}
    assert cli.writable_numba_cache(env) == str(src)  # writable: left alone
    os.chmod(str(src), 0o555)
    try:
        if os.access(str(src), os.W_OK):
            pytest.skip('root ignores the mode bits (the image test covers the read-only root)')
        got = cli.writable_numba_cache(env)
    finally:
        os.chmod(str(src), 0o755)
    assert got != str(src) and env['NUMBA_CACHE_DIR'] == got
    assert open(os.path.join(got, 'engine_x', 'k.nbi'), 'rb').read() == b'index'
