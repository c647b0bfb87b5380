"""Tiled gradients: big pictures in memory bounded by the tile, not the picture.

A whole-picture gradient costs the net's blobs for every pixel (about 1.5 KB per pixel to
inception_4c/output: a 24 MP picture would need ~40 GB). Above the tile size, each step's
gradient is computed crop by crop over the jitter-rolled picture (as TensorFlow's DeepDream
tutorial and neural-dream do) and stitched:

  - the picture is cut into cores of at most tile - 2*margin pixels; the net sees each core
    with `margin` pixels of real picture around it (the crop, at most `tile` pixels a side),
    and only the core's part of the crop's gradient is kept. A pixel's gradient depends on
    the picture within the receptive field of the units it feeds; the margin gives the
    units near a core's edge that context, so the stitched gradient is the whole-picture
    gradient except for a small difference near the cores' edges (measured: see the README);
  - crops start on multiples of ALIGN (32 px, the largest stride of GoogLeNet's dreamable
    blobs), so each crop's units sit on the whole picture's grid of units;
  - the cores' edges move randomly at every step (on top of the notebook's jitter roll), so
    whatever difference remains never builds up along a fixed line: no seam;
  - the normalisation (step_size / mean |g|) uses the mean over the whole stitched gradient,
    as the whole-picture step does.

A picture (octave) that fits in one tile takes the notebook's step unchanged (engine/dream.py
make_step), bit for bit. The tiled step updates the picture in place and keeps only the
picture, one gradient buffer and one crop's net in memory.
"""

import math

import numpy as np

ALIGN = 32  # crops start on multiples of this (px): GoogLeNet's largest blob stride
DEFAULT_TILE = 768  # px a side of the largest crop the net sees (chosen by measurement, README)
MIN_TILE = 256  # smaller tiles are mostly margin
# --tile auto: pictures up to this many pixels (1280x1024, what ddctl's default --max-size
# gives) are dreamed whole, as before (~2.3 GB, and no margins to pay for); bigger ones in
# DEFAULT_TILE tiles, so that their memory stays bounded.
WHOLE_MAX_PIXELS = 1280 * 1024


def resolve_tile(tile, h, w):
    """The tile for an h x w picture: 'auto' (or None) -> 0 (whole) up to WHOLE_MAX_PIXELS,
    else DEFAULT_TILE; a number as it is (0: never tile)."""
    if tile in (None, 'auto'):
        return 0 if h * w <= WHOLE_MAX_PIXELS else DEFAULT_TILE
    return int(tile)


def margin_for(tile):
    """Pixels of real picture around each core (measured: README), for a tile of `tile` px."""
    return 64 if tile >= 512 else ALIGN


def spans(length, tile, margin, rng=None):
    """Cut an axis of `length` px into [(core0, core1, crop0, crop1)].

    Cores tile [0, length) without overlap, each at most tile - 2*margin px; each crop is
    its core plus `margin` px on each side (clipped to the picture), at most `tile` px,
    starting on a multiple of ALIGN. The inner core edges are placed at random (rng.uniform)
    around their evenly spaced places; rng None keeps them evenly spaced. An axis that fits
    in one tile is one span [(0, length, 0, length)].
    """
    if length <= tile:
        return [(0, length, 0, length)]
    core = tile - 2 * margin  # largest core
    if core < 3 * ALIGN or margin % ALIGN:
        raise ValueError('tile %d with margin %d leaves no room for cores' % (tile, margin))
    n = int(math.ceil(length / float(core - 2 * ALIGN)))  # leave 2*ALIGN for moving edges
    step = length / float(n)  # nominal core length
    room = max(0.0, (core - step - ALIGN) / 2.0)  # how far an edge may move either way
    edges = [0]
    for k in range(1, n):
        u = rng.uniform(-room, room) if rng is not None else 0.0
        e = int(round((k * step + u) / ALIGN)) * ALIGN
        edges.append(min(max(e, edges[-1] + ALIGN), length - ALIGN))
    edges.append(length)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        out.append((a, b, max(0, a - margin), min(length, b + margin)))
    return out


def tiled_gradient(net, data, end, tile, margin, shift=(0, 0), rng=None, out=None):
    """The input gradient of the picture rolled by shift=(oy, ox), computed crop by crop,
    returned rolled back: (3,H,W) float32 in data's own coordinates.

    Equals np.roll(net.input_gradient(np.roll(data, shift)), -shift) up to the cores' edge
    differences (see top). Only one crop at a time is copied out of data.
    """
    C, H, W = data.shape
    oy, ox = int(shift[0]) % H if H else 0, int(shift[1]) % W if W else 0
    g = np.empty_like(data) if out is None else out  # (3,H,W) in data's coordinates
    ys, xs = spans(H, tile, margin, rng), spans(W, tile, margin, rng)
    rows = (np.arange(H) - oy) % H  # rolled row r shows data row rows[r]
    cols = (np.arange(W) - ox) % W
    for c0y, c1y, y0, y1 in ys:
        band = np.take(data, rows[y0:y1], axis=1)  # (3, y1-y0, W) rows of the rolled picture
        for c0x, c1x, x0, x1 in xs:
            crop = np.ascontiguousarray(np.take(band, cols[x0:x1], axis=2))  # (3,h,w)
            gc = net.input_gradient(crop, end)  # (3,h,w)
            core = gc[:, c0y - y0 : c1y - y0, c0x - x0 : c1x - x0]
            g[np.ix_(range(C), rows[c0y:c1y], cols[c0x:c1x])] = core
        del band
    return g


def _abs_mean(g):
    """mean |g| without a picture-sized temporary (float64 sums per channel)."""
    total = 0.0
    for c in range(g.shape[0]):
        total += float(np.abs(g[c]).sum(dtype=np.float64))
    return total / g.size if g.size else 0.0


def make_step(
    net,
    data,
    step_size=1.5,
    end='inception_4c/output',
    jitter=32,
    clip=True,
    rng=np.random,
    tile=DEFAULT_TILE,
    margin=None,
    grad=None,
):
    """The notebook's make_step with a tiled gradient; updates data (3,H,W) in place and
    returns it. Draws the jitter exactly as the notebook, then the core edges."""
    margin = margin_for(tile) if margin is None else margin
    oy_ox = rng.randint(-jitter, jitter + 1, 2)  # (ox, oy), drawn as the notebook does
    ox, oy = int(oy_ox[0]), int(oy_ox[1])
    g = tiled_gradient(net, data, end, tile, margin, shift=(oy, ox), rng=rng, out=grad)
    gmean = _abs_mean(g)
    if gmean > 0:
        k = np.float32(step_size / gmean)
        for c in range(data.shape[0]):  # one channel at a time: no picture-sized temporary
            data[c] += k * g[c]
    if clip:
        bias = np.asarray(net.mean, dtype=np.float32).reshape(3, 1, 1)
        np.clip(data, -bias, 255 - bias, out=data)
    return data


def needs_tiles(shape, tile):
    """Whether a (3,h,w) picture is bigger than one tile (tile 0 or None: never)."""
    return bool(tile) and (shape[-2] > tile or shape[-1] > tile)
