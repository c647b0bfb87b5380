"""Run inside the dream image: what a tile costs, and how close a tiled gradient is.

    python3 bench/tiles_in_image.py cost TILE [W H [LAYER]]
        one tiled gradient of a WxH picture (default 2048x1536) with TILE-px crops
        (TILE 0: the whole picture at once); prints seconds per megapixel and the
        process's peak memory (one size per process: the peak never goes down)
    python3 bench/tiles_in_image.py accuracy TILE [W H [LAYER [MARGIN]]]
        the tiled gradient against the whole-picture one on the same picture (default
        1024x768); prints the mean |difference| relative to the mean |gradient|, by
        distance to the nearest core edge

Prints one JSON object per line. bench/tiles.sh runs the sizes the README reports.
"""

import json
import os
import resource
import sys
import time

import numpy as np

from engine import caffe_net, tiling


def picture(w, h):
    """(3,H,W) float32 BGR minus mean with edges and texture."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.RandomState(1)
    img = np.stack([100 * np.sin(xx / 9.0), 100 * np.cos(yy / 7.0), (xx + yy) % 256 - 128], axis=0)
    img += rng.normal(0, 12, img.shape).astype(np.float32)
    return np.clip(img, -110, 130).astype(np.float32)


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cost(tile, w=2048, h=1536, layer="inception_4c/output"):
    net = caffe_net.load_net()
    net.input_gradient(picture(256, 256), layer)  # warm-up: the cut net, numba's kernels
    data = picture(w, h)
    base = peak_mb()
    secs = []
    for _ in range(2):  # best of 2
        t0 = time.monotonic()
        if tile:
            tiling.tiled_gradient(net, data, layer, tile, tiling.margin_for(tile))
        else:
            net.input_gradient(data, layer)
        secs.append(time.monotonic() - t0)
    secs = min(secs)
    print(
        json.dumps(
            dict(
                mode="cost",
                tile=tile,
                margin=tiling.margin_for(tile) if tile else 0,
                width=w,
                height=h,
                layer=layer,
                seconds=round(secs, 2),
                s_per_mp=round(secs / (w * h / 1e6), 3),
                peak_mb=round(peak_mb()),
                net_mb=round(peak_mb() - base),
            )
        ),
        flush=True,
    )


def accuracy(tile, w=1024, h=768, layer="inception_4c/output", margin=None):
    net = caffe_net.load_net()
    data = picture(w, h)
    margin = tiling.margin_for(tile) if margin is None else int(margin)
    whole = net.input_gradient(data, layer)
    tiled = tiling.tiled_gradient(net, data, layer, tile, margin)
    scale = float(np.abs(whole).mean())
    diff = np.abs(tiled - whole).mean(axis=0)  # (H,W)
    # distance of every pixel to the nearest inner core edge, per axis
    ys, xs = tiling.spans(h, tile, margin), tiling.spans(w, tile, margin)
    ey = [a for a, _, _, _ in ys[1:]]
    ex = [a for a, _, _, _ in xs[1:]]
    dy = np.min(np.abs(np.arange(h)[:, None] - np.array(ey or [10**6])[None, :]), axis=1)
    dx = np.min(np.abs(np.arange(w)[:, None] - np.array(ex or [10**6])[None, :]), axis=1)
    dist = np.minimum(dy[:, None], dx[None, :])  # (H,W)
    rows = []
    for lo, hi in ((0, 8), (8, 16), (16, 32), (32, 64), (64, 128), (128, 10**6)):
        m = (dist >= lo) & (dist < hi)
        if m.any():
            rows.append(
                dict(
                    dist="%d-%s" % (lo, hi if hi < 10**6 else "..."),
                    rel=round(float(diff[m].mean() / scale), 4),
                )
            )
    print(
        json.dumps(
            dict(
                mode="accuracy",
                tile=tile,
                margin=margin,
                width=w,
                height=h,
                layer=layer,
                max_rel=round(float(diff.max() / scale), 4),
                mean_rel=round(float(diff.mean() / scale), 4),
                by_distance=rows,
            )
        ),
        flush=True,
    )


if __name__ == "__main__":
    os.environ.setdefault("GLOG_minloglevel", "2")
    mode, args = sys.argv[1], sys.argv[2:]
    nums = [int(a) for a in args[:3]]
    rest = args[3:]
    if mode == "cost":
        cost(*nums, *rest)
    else:
        accuracy(*nums, *rest)
