"""The DeepDream algorithm of Google's 2015 notebook (google/deepdream dream.ipynb), in numpy.

Same arithmetic as the notebook, step for step, against the small Net interface of
engine/net.py instead of a caffe.Classifier:
  preprocess   RGB (H,W,3) uint8 -> BGR (3,H,W) float32, mean subtracted
  make_step    jitter roll, gradient ascent on the L2 objective, roll back, clip
  deepdream    octaves (scipy.ndimage.zoom order=1, reimplemented here), detail carried up
Given the same input, layer, parameters and jitter offsets it gives the notebook's picture
(tests/unit/notebook_reference.py is the plain transcription it is tested against).
"""

from typing import Any

import numpy as np

from engine import tiling

_resize_kernel: Any = False  # engine.resize_kernel once looked for; None: numpy's resize


def compiled_resize():
    """engine/resize_kernel.py (numba) in the image, None elsewhere (the host's unit tests).
    Imported on first use, not with this module: numba must not load before the engine has
    pointed its cache at a writable folder (cli.writable_numba_cache, with the net)."""
    global _resize_kernel
    if _resize_kernel is False:
        found: Any = None
        try:
            from engine import resize_kernel

            found = resize_kernel
        except Exception:  # no numba, or no usable cache: numpy's resize, the same numbers
            pass
        _resize_kernel = found
    return _resize_kernel


# -----------------------------------------------------------------------------
# pre/post processing (notebook: preprocess, deprocess, showarray's uint8 cast)


def _bias(mean):
    return np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)  # (3,1,1) BGR


def preprocess(mean, img):
    """img (H,W,3) RGB -> (3,H,W) float32 BGR minus mean."""
    return np.float32(np.rollaxis(img, 2)[::-1]) - _bias(mean)


def deprocess(mean, data):
    """data (3,H,W) float32 BGR minus mean -> (H,W,3) float32 RGB (unclipped)."""
    return np.dstack((data + _bias(mean))[::-1])


def to_uint8(vis):
    """(H,W,3) float -> uint8 the way the notebook's showarray did (clip, then truncate)."""
    return np.uint8(np.clip(vis, 0, 255))


# -----------------------------------------------------------------------------
# scipy.ndimage.zoom(x, (1, zy, zx), order=1) in numpy


def zoom_shape(n, z):
    """Output length scipy.ndimage.zoom gives for an axis of length n and factor z."""
    return int(round(n * z))


def _axis_taps(n_in, n_out):
    """Linear-interpolation taps along one axis, scipy's mapping with grid_mode=False:
    output index k samples input coordinate k * (n_in-1)/(n_out-1) (both ends aligned)."""
    z = (n_in - 1) / (n_out - 1) if n_out > 1 else 1.0
    cc = np.arange(n_out, dtype=np.float64) * z  # (n_out,) input coords
    valid = (cc >= 0) & (cc <= n_in - 1)  # outside -> cval 0
    cc = np.where(valid, cc, 0.0)
    i0 = np.floor(cc).astype(np.intp)  # (n_out,) left tap
    w0 = 1.0 - (cc - i0)  # weight of left tap
    w1 = 1.0 - w0  # scipy: weights sum to 1
    i1 = i0 + 1  # right tap, mirrored at edge
    if n_in <= 1:
        i1 = np.zeros_like(i1)
    else:
        i1 = np.where(i1 >= n_in, 2 * n_in - 2 - i1, i1)
    w0 = np.where(valid, w0, 0.0)
    w1 = np.where(valid, w1, 0.0)
    return i0, i1, w0, w1


def resize(x, h, w, rows_per_chunk=256):
    """Bilinear resize of x (C,H,W) to (C,h,w), exactly like scipy.ndimage.zoom(order=1,
    mode='constant') given factors that yield that shape: computed in float64, cast back.
    Done in bands of output rows, so a 24 MP picture needs no picture-sized float64 copies
    (each output pixel's arithmetic is the same whatever the band)."""
    C, H, W = x.shape
    y0, y1, wy0, wy1 = _axis_taps(H, h)  # (h,) each
    x0, x1, wx0, wx1 = _axis_taps(W, w)  # (w,) each
    out = np.empty((C, h, w), dtype=x.dtype)
    kernel = compiled_resize() if x.dtype == np.float32 else None
    if kernel is not None:
        kernel.bilinear(x, out, y0, y1, wy0, wy1, x0, x1, wx0, wx1)
        return out
    for r in range(0, h, rows_per_chunk):
        sl = slice(r, r + rows_per_chunk)
        rows0 = x[:, y0[sl], :].astype(np.float64)  # (C,band,W)
        rows1 = x[:, y1[sl], :].astype(np.float64)
        by0, by1 = wy0[sl, None], wy1[sl, None]  # (band,1)
        # same products and summation order as scipy's C loop: ((v*wy)*wx), corners y0x0,y0x1,y1x0,y1x1
        acc = rows0[:, :, x0] * by0 * wx0
        acc += rows0[:, :, x1] * by0 * wx1
        acc += rows1[:, :, x0] * by1 * wx0
        acc += rows1[:, :, x1] * by1 * wx1  # (C,band,w) float64
        out[:, sl] = acc
    return out


def warm_up():
    """Compile (and cache) the numba resize on a tiny picture (the image's build runs it):
    for contiguous arrays and for views (preprocess's picture is one)."""
    x = np.zeros((1, 3, 4), np.float32)
    resize(x, 5, 6)
    resize(x[:, ::-1], 5, 6)


def zoom(x, zy, zx):
    """scipy.ndimage.zoom(x, (1, zy, zx), order=1) for x (C,H,W)."""
    C, H, W = x.shape
    return resize(x, zoom_shape(H, zy), zoom_shape(W, zx))


def octave_shapes(h, w, octave_n, octave_scale):
    """[(h, w)] of each octave, largest (the picture) first, as the notebook builds them:
    each octave is the previous one zoomed by 1/octave_scale."""
    shapes = [(h, w)]
    for _ in range(octave_n - 1):
        h, w = zoom_shape(h, 1.0 / octave_scale), zoom_shape(w, 1.0 / octave_scale)
        shapes.append((h, w))
    return shapes


# -----------------------------------------------------------------------------
# the algorithm


def make_step(net, data, step_size=1.5, end='inception_4c/output', jitter=32, clip=True, rng=np.random):
    """One gradient-ascent step on the objective `end` (a blob name: the L2 norm of that
    blob, as the notebook; or an engine/objectives.py objective, passed on to the net).
    data (3,H,W) float32 BGR minus mean -> new data (3,H,W) float32."""
    ox, oy = rng.randint(-jitter, jitter + 1, 2)  # drawn as the notebook does
    data = np.roll(np.roll(data, ox, -1), oy, -2)  # (3,H,W) jitter shift
    g = net.input_gradient(data, end)  # (3,H,W) d objective / d data (L2: d|end|^2/2)
    gmean = np.abs(g).mean()
    if gmean > 0:  # the notebook would divide by zero (all units dead): no step instead
        data += step_size / gmean * g  # normalised ascent step
    data = np.roll(np.roll(data, -ox, -1), -oy, -2)  # unshift
    if clip:
        bias = _bias(net.mean)  # (3,1,1)
        data = np.clip(data, -bias, 255 - bias)  # stay a valid picture
    return data


def deepdream(
    net,
    base_img,
    iter_n=10,
    octave_n=4,
    octave_scale=1.4,
    end='inception_4c/output',
    clip=True,
    step_size=1.5,
    jitter=32,
    rng=None,
    progress=None,
    tile=None,
    margin=None,
):
    """base_img (H,W,3) RGB -> dreamed (H,W,3) float32 RGB (unclipped, like the notebook's).

    rng: something with numpy's legacy randint (np.random.RandomState(seed) for a repeatable
    run; default the global np.random, as the notebook). progress(octave, iteration, data)
    is called after every step; octave 0 is the smallest, data is (3,h,w) float32 BGR.
    tile: octaves bigger than tile x tile px get their gradient crop by crop
    (engine/tiling.py; margin: context px around each core, default from the tile);
    None or 0 never tiles. Octaves that fit in one tile take the notebook's step.
    `end` is passed to net.input_gradient as it is (a blob name, or an objective).
    """
    rng = np.random if rng is None else rng
    # prepare base images for all octaves, largest first
    octaves = [preprocess(net.mean, base_img)]  # [(3,H,W)]
    for _ in range(octave_n - 1):
        octaves.append(zoom(octaves[-1], 1.0 / octave_scale, 1.0 / octave_scale))

    reserve = getattr(net, "reserve", None)  # optional: size the net once, largest first
    untiled = [o.shape for o in octaves if not tiling.needs_tiles(o.shape, tile)]
    if reserve is not None and untiled:
        reserve(untiled[0][-2], untiled[0][-1], end)  # the largest octave run whole
    detail = np.zeros_like(octaves[-1])  # (3,h,w) network-produced details
    data = None
    for octave in range(octave_n):  # smallest first
        octave_base = octaves.pop()  # each octave's base is dropped once used (memory)
        h, w = octave_base.shape[-2:]
        if octave > 0:
            # upscale details from the previous octave (notebook: zoom by h/h1, w/w1)
            h1, w1 = detail.shape[-2:]
            detail = zoom(detail, 1.0 * h / h1, 1.0 * w / w1)  # (3,h,w)
        data = octave_base + detail  # (3,h,w)
        detail = None  # memory: the picture-sized arrays alive are data and octave_base
        grad = None  # the tiled step's gradient buffer, one per octave
        for i in range(iter_n):
            if tiling.needs_tiles(data.shape, tile):
                if grad is None:
                    grad = np.empty_like(data)
                data = tiling.make_step(
                    net, data, step_size=step_size, end=end, jitter=jitter, clip=clip, rng=rng,
                    tile=tile, margin=margin, grad=grad,
                )  # fmt: skip
            else:
                data = make_step(net, data, step_size=step_size, end=end, jitter=jitter, clip=clip, rng=rng)
            if progress is not None:
                progress(octave, i, data)
        grad = None
        if octave < octave_n - 1:
            # extract details produced on the current octave
            detail = data - octave_base
        octave_base = None
    return deprocess(net.mean, data)
