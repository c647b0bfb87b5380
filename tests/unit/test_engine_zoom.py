"""engine/zoom.py and engine/sheet.py on the host: the notebook's affine zoom against scipy,
the zoom loop against the notebook's last cell, --resume, contact sheets (fake net)."""

import io
import json
import os
import sys

import numpy as np
import pytest
import scipy.ndimage as nd
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import notebook_reference as nb  # noqa: E402
from test_engine_fakenet import FakeNet  # noqa: E402

from engine import cli, dream, sheet, zoom  # noqa: E402

# -----------------------------------------------------------------------------
# the affine zoom


@pytest.mark.parametrize('h,w', [(48, 64), (31, 17), (240, 320), (1, 5), (2, 2), (575, 1024)])
@pytest.mark.parametrize('s', [0.05, 0.1, 0.0, 0.33])
def test_affine_zoom_equals_the_notebooks_scipy_call_bit_for_bit(h, w, s):
    frame = (np.random.RandomState(h * w).rand(h, w, 3) * 255).astype(np.float32)  # (H,W,3)
    ref = nd.affine_transform(frame, [1 - s, 1 - s, 1], [h * s / 2, w * s / 2, 0], order=1)  # the notebook
    ours = zoom.affine_zoom(frame, s)
    assert ours.dtype == ref.dtype == np.float32 and ours.shape == ref.shape
    assert np.array_equal(ours, ref)


@pytest.mark.parametrize('deg', [0.5, -2.0, 10.0, 45.0])
@pytest.mark.parametrize('mode', ['nearest', 'constant'])
def test_rotating_zoom_equals_scipys_general_affine_path(deg, mode):
    h, w = 37, 52
    frame = (np.random.RandomState(1).rand(h, w, 3) * 255).astype(np.float32)
    matrix, offset = zoom.zoom_transform(h, w, 0.05, deg)
    ref = nd.affine_transform(frame, matrix, offset, order=1, mode=mode)
    assert np.array_equal(zoom.affine_zoom(frame, 0.05, deg, mode), ref)


def test_rotation_turns_counter_clockwise_about_the_centre():
    h = w = 101
    frame = np.zeros((h, w, 3), np.float32)
    frame[50, 80] = 255  # a dot right of the centre
    out = zoom.affine_zoom(frame, 0.0, 90.0, 'nearest')
    y, x = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
    assert (abs(y - 20) <= 1, abs(x - 50) <= 1) == (True, True)  # now above the centre


def test_zoom_enlarges_the_middle_by_one_over_one_minus_s():
    h, w = 60, 80
    frame = np.zeros((h, w, 3), np.float32)
    frame[20:40, 30:50] = 200  # a 20x20 square around the centre
    out = zoom.affine_zoom(frame, 0.2)
    rows = np.where(out[:, 40, 0] > 100)[0]
    assert 24 <= len(rows) <= 26  # 20 / (1 - 0.2) = 25


# -----------------------------------------------------------------------------
# the zoom mode


@pytest.fixture
def pic(tmp_path):
    a = np.random.RandomState(0).randint(0, 256, (40, 56, 3)).astype(np.uint8)
    a[:20] //= 2
    Image.fromarray(a).save(str(tmp_path / 'cat.png'))
    return tmp_path


@pytest.fixture
def fake_encoder(monkeypatch):
    """ffmpeg is tested inside the image (tests/integration); here the encoder only records."""
    calls = []

    def encode(folder, frames, fps, width, height, threads=None):
        calls.append((folder, frames, fps, width, height))
        paths = [folder + '.mp4', folder + '.gif']
        for p in paths:
            with open(p, 'wb') as f:
                f.write(b'video')
        return paths

    monkeypatch.setattr(zoom, '_ffmpeg', lambda: '/usr/bin/ffmpeg')
    monkeypatch.setattr(zoom, 'encode', encode)
    return calls


class StopAfter(FakeNet):
    """A FakeNet that is interrupted (Ctrl-C) at its n-th gradient."""

    def __init__(self, n):
        FakeNet.__init__(self)
        self.n = n

    def input_gradient(self, data, end):
        if self.calls + 1 >= self.n:
            raise KeyboardInterrupt
        return FakeNet.input_gradient(self, data, end)


def run(argv, net=None):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, net_factory=lambda p, w: net or FakeNet(), stdout=out, stderr=err)
    return code, [json.loads(x) for x in out.getvalue().splitlines()], err.getvalue()


ZOOM = ['--mode', 'zoom', 'cat.png', 'conv2', '2', '2', '--frames', '4', '--seed', '9', '--jitter', '3']


def frames_of(folder):
    return {
        n: open(os.path.join(folder, n), 'rb').read()
        for n in sorted(os.listdir(folder))
        if n.endswith('.png')
    }


def test_zoom_writes_the_notebooks_loop_frame_by_frame(pic, fake_encoder):
    code, ev, err = run(ZOOM + ['--output-dir', str(pic)])
    assert code == 0, err
    folder = str(pic / 'cat-zoom-conv2')
    assert sorted(os.listdir(folder)) == ['0000.png', '0001.png', '0002.png', '0003.png', 'zoom.json']
    assert [e['frame'] for e in ev if e['event'] == 'frame'] == [1, 2, 3, 4]
    assert ev[0]['event'] == 'start' and ev[0]['frames'] == 4 and ev[0]['seed'] == 9
    assert ev[-1] == dict(ev[-1], event='done', path=folder + '.mp4', gif=folder + '.gif')
    assert fake_encoder == [(folder, 4, 25, 56, 40)]
    # the notebook's last cell, with scipy's affine_transform and frame i seeded SEED + i
    img = np.asarray(Image.open(str(pic / 'cat.png')))
    frame, h, w, s = np.float32(img), 40, 56, 0.05
    for i in range(4):
        frame = dream.deepdream(
            FakeNet(), frame, iter_n=2, octave_n=2, end='conv2', jitter=3, rng=np.random.RandomState(9 + i)
        )
        want = io.BytesIO()
        Image.fromarray(np.uint8(np.clip(frame, 0, 255))).save(want, format='PNG')
        got = np.asarray(Image.open(os.path.join(folder, '%04d.png' % i)))
        assert np.array_equal(got, np.asarray(Image.open(want))), i
        frame = nd.affine_transform(frame, [1 - s, 1 - s, 1], [h * s / 2, w * s / 2, 0], order=1)
    rec = json.load(open(os.path.join(folder, 'zoom.json')))
    assert rec['complete'] is True and rec['seed'] == 9 and rec['layer'] == 'conv2'
    assert not os.path.exists(os.path.join(folder, zoom.STATE))


def test_zoom_follows_the_notebook_transcription(pic, fake_encoder):
    """Frame 0 against nb.deepdream (the notebook's own code), same jitter stream."""
    run(ZOOM + ['--output-dir', str(pic), '--frames', '1'])
    img = np.asarray(Image.open(str(pic / 'cat.png')))
    np.random.seed(9)
    ref = nb.to_uint8(nb.deepdream(FakeNet(), np.float32(img), iter_n=2, octave_n=2, end='conv2', jitter=3))
    got = np.asarray(Image.open(str(pic / 'cat-zoom-conv2' / '0000.png')))
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_interrupted_zoom_resumes_to_the_same_bytes(pic, fake_encoder, tmp_path_factory):
    whole = tmp_path_factory.mktemp('whole')
    Image.open(str(pic / 'cat.png')).save(str(whole / 'cat.png'))
    assert run(ZOOM + ['--output-dir', str(whole)])[0] == 0
    # each frame is 4 gradients: Ctrl-C during the third frame
    code, ev, err = run(ZOOM + ['--output-dir', str(pic)], net=StopAfter(10))
    assert code == 130 and 'interrupted' in err
    folder = pic / 'cat-zoom-conv2'
    assert sorted(frames_of(str(folder))) == ['0000.png', '0001.png']
    code, ev, err = run(['--mode', 'zoom', '--resume', 'cat-zoom-conv2', '--output-dir', str(pic)])
    assert code == 0, err
    assert ev[0]['first_frame'] == 2 and [e['frame'] for e in ev if e['event'] == 'frame'] == [3, 4]
    assert frames_of(str(folder)) == frames_of(str(whole / 'cat-zoom-conv2'))


def test_a_zoom_never_overwrites_an_earlier_one(pic, fake_encoder):
    for _ in range(2):
        assert run(ZOOM + ['--output-dir', str(pic), '--frames', '1'])[0] == 0
    (pic / 'cat-zoom-conv2-3.mp4').write_bytes(b'someone else')
    assert run(ZOOM + ['--output-dir', str(pic), '--frames', '1'])[0] == 0
    names = sorted(os.listdir(str(pic)))
    assert 'cat-zoom-conv2-2' in names and 'cat-zoom-conv2-4' in names and 'cat-zoom-conv2-3' not in names
    assert (pic / 'cat-zoom-conv2-3.mp4').read_bytes() == b'someone else'


@pytest.mark.parametrize(
    'extra,words',
    [
        (['--frames', '0'], '--frames must be a whole number from 1 to 9999'),
        (['--scale', '0.7'], '--scale must be a number from 0.0 to 0.5'),
        (['--rotate', 'nan'], '--rotate must be a number'),
        (['--fps', '0'], '--fps must be a number'),
        (['--resume', 'nothere'], 'is not a zoom folder'),
        (['nosuchlayer'], "unknown layer 'nosuchlayer'"),
    ],
)
def test_bad_zoom_input_is_one_line_exit_2_and_leaves_nothing(pic, fake_encoder, extra, words):
    before = sorted(os.listdir(str(pic)))
    argv = ['--mode', 'zoom', 'cat.png', '--output-dir', str(pic)]
    if extra[0] == 'nosuchlayer':
        argv = ['--mode', 'zoom', 'cat.png', 'nosuchlayer', '--output-dir', str(pic)]
    else:
        argv += extra
    code, ev, err = run(argv)
    assert code == 2 and ev[-1]['event'] == 'error' and words in ev[-1]['message'], ev
    assert sorted(os.listdir(str(pic))) == before


def test_resume_of_a_finished_zoom_is_refused(pic, fake_encoder):
    assert run(ZOOM + ['--output-dir', str(pic), '--frames', '1'])[0] == 0
    code, ev, _ = run(['--mode', 'zoom', '--resume', 'cat-zoom-conv2', '--output-dir', str(pic)])
    assert code == 2 and 'complete' in ev[-1]['message']


# -----------------------------------------------------------------------------
# contact sheets


def test_sheet_is_one_grid_of_labelled_cells_each_the_layers_dream(pic):
    code, ev, err = run(
        ['--mode', 'sheet', 'cat.png', 'conv1,conv2,conv3', '2', '2', '--seed', '4', '--jitter', '2']
        + ['--output-dir', str(pic)]
    )
    assert code == 0, err
    path = str(pic / 'cat-sheet-3-cells-i2-o2.png')
    assert ev[-1]['event'] == 'done' and ev[-1]['path'] == path
    assert [(e['cell'], e['label']) for e in ev if e['event'] == 'cell'] == [
        (1, 'conv1'),
        (2, 'conv2'),
        (3, 'conv3'),
    ]
    got = np.asarray(Image.open(path))
    boxes = sheet.cell_boxes(3, 40, 56)
    img = np.asarray(Image.open(str(pic / 'cat.png')))
    for (x, y, w, h), layer in zip(boxes, ['conv1', 'conv2', 'conv3']):
        want = dream.to_uint8(
            dream.deepdream(
                FakeNet(), img, iter_n=2, octave_n=2, end=layer, jitter=2, rng=np.random.RandomState(4)
            )
        )
        assert np.array_equal(got[y : y + h, x : x + w], want), layer
        label = got[y + h + 1 : y + h + 20, x : x + w]  # the strip under the cell: text was drawn
        assert (label > 128).sum() > 20
    assert got.shape[:2] == (2 * (40 + 10 + 11) + 3 * sheet.GAP, 2 * 56 + 3 * sheet.GAP)


def test_sheet_layers_all_is_every_dreamable_layer(pic):
    code, ev, err = run(['--mode', 'sheet', 'cat.png', 'all', '1', '1', '--output-dir', str(pic)])
    assert code == 0, err
    assert [e['label'] for e in ev if e['event'] == 'cell'] == FakeNet.NAMES
    assert os.path.exists(str(pic / 'cat-sheet-all-layers-i1-o1.png'))


def test_channels_spec():
    assert sheet.parse_channels('inception_4c/output:0-3') == ('inception_4c/output', [0, 1, 2, 3])
    assert sheet.parse_channels('a:1,5,7-8') == ('a', [1, 5, 7, 8])
    for bad in ['a', 'a:', 'a:x', 'a:5-2', ':3']:
        with pytest.raises(ValueError):
            sheet.parse_channels(bad)


@pytest.mark.parametrize(
    'extra,words',
    [
        (['--layers', 'inception_4c/output'], "unknown layer 'inception_4c/output'"),
        (['--layers', 'conv1,nope'], "unknown layer 'nope'"),
        (['--channels', 'conv1:0-8'], 'conv1 has channels 0-7, not 8'),
        (['--channels', 'nope:0-3'], "unknown layer 'nope'"),
        (['--layers', ','], '--layers is all or'),
    ],
)
def test_bad_sheet_input_is_one_line_exit_2_and_leaves_nothing(pic, extra, words):
    before = sorted(os.listdir(str(pic)))
    code, ev, err = run(['--mode', 'sheet', 'cat.png', '--output-dir', str(pic)] + extra)
    assert code == 2 and ev[-1]['event'] == 'error' and words in ev[-1]['message'], ev
    assert sorted(os.listdir(str(pic))) == before


def test_a_channel_sheet_dreams_each_channel_objective(pic):
    code, ev, err = run(
        ['--mode', 'sheet', 'cat.png', '-', '2', '1', '--channels', 'conv2:0,3', '--seed', '4']
        + ['--output-dir', str(pic)]
    )
    assert code == 0, err
    assert [e['label'] for e in ev if e['event'] == 'cell'] == ['conv2:0', 'conv2:3']
    got = np.asarray(Image.open(str(pic / 'cat-sheet-conv2-channels-i2-o1.png')))
    img = np.asarray(Image.open(str(pic / 'cat.png')))
    for (x, y, w, h), spec in zip(sheet.cell_boxes(2, 40, 56), ['conv2:0', 'conv2:3']):
        net = FakeNet()
        objective = cli.check_layer(net, spec)
        want = dream.to_uint8(
            dream.deepdream(net, img, iter_n=2, octave_n=1, end=objective, rng=np.random.RandomState(4))
        )
        assert np.array_equal(got[y : y + h, x : x + w], want), spec
