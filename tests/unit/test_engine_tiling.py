"""Tiled gradients (engine/tiling.py): bounded crops, the whole-picture gradient, no seams."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import notebook_reference as nb
from test_engine_fakenet import MEAN, FakeNet, _down, _down_backward

from engine import dream, tiling
from engine.net import LayerInfo


def _conv3(x, w, b):
    """relu(3x3 convolution, zero padding 1) of x (C,H,W); w (O,C,3,3) -> (O,H,W)."""
    C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    z = np.zeros((w.shape[0], H, W), np.float32)
    for dy in range(3):
        for dx in range(3):
            z += np.einsum('oc,chw->ohw', w[:, :, dy, dx], xp[:, dy : dy + H, dx : dx + W])
    return np.maximum(z + b[:, None, None], 0).astype(np.float32)


def _conv3_backward(x, y, dy_, w):
    C, H, W = x.shape
    dz = np.where(y > 0, dy_, 0).astype(np.float32)
    dxp = np.zeros((C, H + 2, W + 2), np.float32)
    for dy in range(3):
        for dx in range(3):
            dxp[:, dy : dy + H, dx : dx + W] += np.einsum('oc,ohw->chw', w[:, :, dy, dx], dz)
    return dxp[:, 1:-1, 1:-1]


class ConvNet:
    """A small net whose units see overlapping windows, like GoogLeNet's (FakeNet's do not):
    (3x3 conv + ReLU, 2x2 stride-2 conv + ReLU) x 5. Receptive fields of b3 and b5: 22 and
    94 px (strides 8, 32).
    Records the size of every picture it is given."""

    mean = MEAN
    NAMES = ['b1', 'b2', 'b3', 'b4', 'b5']
    CHANNELS = (6, 8, 12, 12, 12)
    RF = {'b3': 22, 'b5': 94}

    def __init__(self, seed=3):
        rng = np.random.RandomState(seed)
        self.layers_ = []
        c = 3
        for o in self.CHANNELS:
            w3 = (rng.randn(c, c, 3, 3) / np.sqrt(9 * c)).astype(np.float32)
            b3 = (rng.randn(c) * 0.1).astype(np.float32)
            w2 = (rng.randn(o, c, 2, 2) / np.sqrt(4 * c)).astype(np.float32)
            b2 = (rng.randn(o) * 0.1).astype(np.float32)
            self.layers_.append((w3, b3, w2, b2))
            c = o
        self.seen = []

    def input_gradient(self, data, end):
        self.seen.append(data.shape)
        k = self.NAMES.index(end) + 1
        acts, x = [], data.astype(np.float32)
        for w3, b3, w2, b2 in self.layers_[:k]:
            y3 = _conv3(x, w3, b3)
            y2 = _down(y3, w2, b2)
            acts.append((x, y3, y2))
            x = y2
        g = x  # L2 objective: d(|x|^2/2)/dx = x
        for (x0, y3, y2), (w3, _, w2, _) in zip(acts[::-1], self.layers_[:k][::-1]):
            g = _down_backward(y3, y2, g, w2)
            g = _conv3_backward(x0, y3, g, w3)
        return g.astype(np.float32)

    def layers(self):
        return [LayerInfo(n, c, 2 ** (i + 1)) for i, (n, c) in enumerate(zip(self.NAMES, self.CHANNELS))]

    def min_input_size(self, end):
        return 8


def picture(h, w, seed=0):
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([60 * np.sin(xx / 5.0), 60 * np.cos(yy / 4.0), (xx * yy) % 97 - 48], 0)
    return (img + rng.normal(0, 20, (3, h, w))).astype(np.float32)  # (3,H,W) BGR minus mean


def whole_gradient(net, data, end, shift):
    """The notebook's gradient: of the rolled picture, rolled back."""
    oy, ox = shift
    rolled = np.roll(np.roll(data, ox, -1), oy, -2)
    g = net.input_gradient(rolled, end)
    return np.roll(np.roll(g, -ox, -1), -oy, -2)


def edges_of(sp):
    return [a for a, _, _, _ in sp[1:]]


# -----------------------------------------------------------------------------
# spans


@pytest.mark.parametrize('length', [257, 300, 511, 512, 513, 1000, 1999, 6000])
@pytest.mark.parametrize('tile,margin', [(256, 32), (512, 64), (768, 64), (1024, 64)])
def test_spans_cover_the_axis_with_bounded_aligned_crops(length, tile, margin):
    for seed in range(5):
        sp = tiling.spans(length, tile, margin, np.random.RandomState(seed))
        if length <= tile:
            assert sp == [(0, length, 0, length)]
            continue
        assert sp[0][0] == 0 and sp[-1][1] == length
        for (a, b, c0, c1), nxt in zip(sp, sp[1:] + [None]):
            assert a < b and (nxt is None or nxt[0] == b)  # cores partition the axis
            assert b - a <= tile - 2 * margin
            assert c1 - c0 <= tile  # what the net sees never exceeds the tile
            assert c0 % tiling.ALIGN == 0  # on the grid of the net's units
            assert c0 == max(0, a - margin) and c1 == min(length, b + margin)


def test_inner_edges_move_from_step_to_step_and_stay_put_without_rng():
    rng = np.random.RandomState(0)
    layouts = {tuple(edges_of(tiling.spans(3000, 768, 64, rng))) for _ in range(20)}
    assert len(layouts) > 10
    assert tiling.spans(3000, 768, 64) == tiling.spans(3000, 768, 64)


def test_needs_tiles():
    assert not tiling.needs_tiles((3, 768, 768), 768)
    assert tiling.needs_tiles((3, 769, 100), 768)
    assert not tiling.needs_tiles((3, 5000, 5000), 0) and not tiling.needs_tiles((3, 5000, 5000), None)


# -----------------------------------------------------------------------------
# the tiled gradient against the whole-picture gradient


@pytest.mark.parametrize('shift', [(0, 0), (13, -29), (-32, 7)])
def test_tiled_gradient_equals_the_whole_pictures_when_the_margin_covers_the_receptive_field(shift):
    net = ConvNet()
    data = picture(300, 420)
    tile, margin = 256, 32  # margin 32 > 22: the units that a kept pixel feeds saw all they see
    g = tiling.tiled_gradient(net, data, 'b3', tile, margin, shift=shift, rng=np.random.RandomState(1))
    ref = whole_gradient(net, data, 'b3', shift)
    assert max(s[1] for s in net.seen[:-1]) <= tile and max(s[2] for s in net.seen[:-1]) <= tile
    assert np.allclose(g, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).mean())


def test_with_a_small_margin_only_pixels_near_core_edges_differ():
    """Margin 32 < b5's receptive field (94 px): the gradient differs, but only within the
    margin's shortfall (94 - 32 px) of a core edge."""
    net = ConvNet()
    data = picture(320, 640)
    tile, margin = 256, 32
    g = tiling.tiled_gradient(net, data, 'b5', tile, margin)
    ref = net.input_gradient(data, 'b5')
    ex = edges_of(tiling.spans(640, tile, margin))
    ey = edges_of(tiling.spans(320, tile, margin))
    assert len(ex) >= 4 and len(ey) >= 2
    dist = np.minimum(
        np.min(np.abs(np.arange(320)[:, None] - np.array(ey)[None]), 1)[:, None],
        np.min(np.abs(np.arange(640)[:, None] - np.array(ex)[None]), 1)[None, :],
    )  # (H,W) px to the nearest inner core edge
    diff = np.abs(g - ref).max(axis=0)
    scale = np.abs(ref).mean()
    assert diff[dist >= net.RF['b5'] - margin].max() <= 1e-4 * scale  # exact further away
    assert diff[dist < 4].mean() > 1e-3 * scale  # (and the test can see a difference)
    # (how big the difference is on GoogLeNet, with the engine's margin, and that its mean
    # |g| shows no step at core edges: tests/integration/in_image/check_tiles.py)


def test_a_wide_picture_cut_in_many_cores_stitches_to_the_whole_gradient():
    """FakeNet's windows do not overlap: on the 32 px grid the stitched gradient is exact."""
    net = FakeNet()
    data = picture(256, 1200, seed=4)
    g = tiling.tiled_gradient(net, data, 'conv3', 320, 32, shift=(5, 11))
    ref = whole_gradient(net, data, 'conv3', (5, 11))
    assert np.allclose(g, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).mean())


# -----------------------------------------------------------------------------
# in the dream


def uint8_picture(h, w, seed=0):
    rng = np.random.RandomState(seed)
    img = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
    img[: h // 2] //= 2
    return img


@pytest.mark.parametrize('tile', [None, 0, 84, 256, 768])
def test_a_picture_that_fits_in_one_tile_dreams_bit_for_bit_like_the_notebook(tile):
    img = uint8_picture(61, 84)
    np.random.seed(7)
    ref = nb.deepdream(FakeNet(), img, iter_n=3, octave_n=3, end='conv2', jitter=5)
    ours = dream.deepdream(
        FakeNet(), img, iter_n=3, octave_n=3, end='conv2', jitter=5, rng=np.random.RandomState(7), tile=tile
    )
    plain = dream.deepdream(
        FakeNet(), img, iter_n=3, octave_n=3, end='conv2', jitter=5, rng=np.random.RandomState(7)
    )
    assert np.array_equal(ours, plain)  # the untiled engine, bit for bit
    assert np.array_equal(dream.to_uint8(ours), nb.to_uint8(ref)) or (
        np.abs(dream.to_uint8(ours).astype(int) - nb.to_uint8(ref).astype(int)).max() <= 1
    )


def test_a_big_picture_dreams_in_crops_no_bigger_than_the_tile_and_small_octaves_whole():
    net = ConvNet()
    img = uint8_picture(300, 640)
    seen_octaves = []
    out = dream.deepdream(
        net,
        img,
        iter_n=2,
        octave_n=3,
        octave_scale=1.5,
        end='b2',
        jitter=8,
        rng=np.random.RandomState(0),
        tile=256,
        progress=lambda o, i, d: seen_octaves.append(d.shape),
    )
    assert out.shape == (300, 640, 3)
    assert max(max(s[1], s[2]) for s in net.seen) <= 256
    # the smallest octave (133x284) is cut too; a 300x640 tile would see it whole
    assert (3, 300, 640) in seen_octaves and len(net.seen) > 2 * 3
    assert np.abs(dream.to_uint8(out).astype(int) - img.astype(int)).mean() > 1
    # same seed, same picture
    again = dream.deepdream(
        ConvNet(), img, iter_n=2, octave_n=3, octave_scale=1.5, end='b2', jitter=8,
        rng=np.random.RandomState(0), tile=256,
    )  # fmt: skip
    assert np.array_equal(out, again)


def test_the_tiled_step_is_the_notebooks_step_given_the_same_gradient():
    """With one crop covering everything the tiled step is the notebook's arithmetic."""
    net = FakeNet()
    data = picture(64, 96)
    ours = tiling.make_step(
        net, data.copy(), end='conv2', jitter=4, rng=np.random.RandomState(3), tile=32 * 5, margin=32
    )
    ref = dream.make_step(net, data.copy(), end='conv2', jitter=4, rng=np.random.RandomState(3))
    assert np.allclose(ours, ref, rtol=1e-5, atol=1e-3)


def test_resize_in_bands_is_scipys_zoom():
    import scipy.ndimage as nd

    x = (np.random.RandomState(0).randn(3, 71, 53) * 100).astype(np.float32)
    a = nd.zoom(x, (1, 1.4, 1.4), order=1)
    assert np.array_equal(dream.resize(x, *a.shape[1:], rows_per_chunk=7), a)
