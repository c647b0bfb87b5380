"""engine/dream.py against the plain notebook transcription, on the same (fake) net."""

import os
import sys

import numpy as np
import pytest
import scipy.ndimage as nd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import notebook_reference as nb
from test_engine_fakenet import FakeNet

from engine import dream


def picture(h, w, seed=0):
    rng = np.random.RandomState(seed)
    img = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)  # (H,W,3) RGB
    img[: h // 2] //= 2  # some structure
    return img


def both(img, seed, **kw):
    """(engine result, notebook result) as float arrays, same net, same jitter stream."""
    net = FakeNet()
    np.random.seed(seed)
    ref = nb.deepdream(net, img, **kw)
    ours = dream.deepdream(FakeNet(), img, rng=np.random.RandomState(seed), **kw)
    return ours, ref


@pytest.mark.parametrize('end', ['conv1', 'conv2', 'conv3'])
@pytest.mark.parametrize('jitter', [0, 5])
def test_engine_equals_notebook_pixel_for_pixel(end, jitter):
    img = picture(61, 84)
    ours, ref = both(
        img, seed=7, iter_n=3, octave_n=3, octave_scale=1.4, end=end, jitter=jitter, step_size=1.5
    )
    assert ours.shape == ref.shape == (61, 84, 3)
    a, b = dream.to_uint8(ours), nb.to_uint8(ref)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert np.allclose(ours, ref, atol=1e-3)
    # and the dream did something: the picture changed
    assert np.abs(a.astype(int) - img.astype(int)).mean() > 1


def test_engine_equals_notebook_with_defaults_on_odd_size():
    img = picture(45, 37, seed=2)
    ours, ref = both(img, seed=123, iter_n=2, octave_n=4, end='conv2')  # jitter 32 default
    assert np.abs(dream.to_uint8(ours).astype(int) - nb.to_uint8(ref).astype(int)).max() <= 1


def test_same_seed_same_picture_other_seed_other_picture():
    img = picture(40, 40)

    def run(s):
        return dream.to_uint8(
            dream.deepdream(
                FakeNet(), img, iter_n=2, octave_n=2, end='conv2', jitter=8, rng=np.random.RandomState(s)
            )
        )

    assert np.array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_unclipped_dream_matches_notebook_too():
    img = picture(30, 50)
    ours, ref = both(img, seed=0, iter_n=2, octave_n=2, end='conv1', jitter=3, clip=False)
    assert np.allclose(ours, ref, atol=1e-3)


def test_progress_reports_every_step_in_order_with_octave_sizes():
    seen = []
    dream.deepdream(
        FakeNet(),
        picture(50, 70),
        iter_n=3,
        octave_n=3,
        end='conv1',
        jitter=2,
        rng=np.random.RandomState(0),
        progress=lambda o, i, d: seen.append((o, i, d.shape)),
    )
    shapes = dream.octave_shapes(50, 70, 3, 1.4)[::-1]
    assert seen == [(o, i, (3,) + shapes[o]) for o in range(3) for i in range(3)]


def test_octave_shapes_match_the_notebook_chain_of_zooms():
    x = np.zeros((3, 575, 1024), np.float32)
    shapes = []
    for _ in range(4):
        shapes.append(x.shape[1:])
        x = nd.zoom(x, (1, 1.0 / 1.4, 1.0 / 1.4), order=1)
    assert dream.octave_shapes(575, 1024, 4, 1.4) == shapes


@pytest.mark.parametrize('h,w', [(1, 1), (2, 3), (7, 8), (31, 64), (575, 1024), (100, 33)])
@pytest.mark.parametrize('z', [1 / 1.4, 1 / 1.5, 1 / 1.9, 1.4, 2.0, 0.5, 1.37])
def test_zoom_equals_scipy(h, w, z):
    x = (np.random.RandomState(h * w).randn(3, h, w) * 100).astype(np.float32)
    a = nd.zoom(x, (1, z, z), order=1)
    b = dream.zoom(x, z, z)
    assert b.dtype == np.float32 and a.shape == b.shape
    assert np.array_equal(a, b)


def test_zoom_with_different_factors_per_axis_equals_scipy():
    x = (np.random.RandomState(0).randn(3, 40, 29) * 50).astype(np.float32)
    a = nd.zoom(x, (1, 57 / 40.0, 41 / 29.0), order=1)
    assert np.array_equal(a, dream.zoom(x, 57 / 40.0, 41 / 29.0))
    assert a.shape == (3, 57, 41)


def test_preprocess_deprocess_round_trip_and_layout():
    img = picture(5, 6)
    x = dream.preprocess(FakeNet().mean, img)
    assert x.shape == (3, 5, 6) and x.dtype == np.float32
    assert x[0, 0, 0] == np.float32(img[0, 0, 2]) - 104  # BGR, mean subtracted
    assert np.array_equal(dream.to_uint8(dream.deprocess(FakeNet().mean, x)), img)
