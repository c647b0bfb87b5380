"""Run inside the dream image: the tiled gradient against the whole-picture one, on Caffe.

    python3 check_tiles.py LAYER W H TILE [MARGIN]

Prints one JSON object: the mean |tiled - whole| relative to the mean |whole| by distance
to the nearest inner core edge, and the seam check: mean |g| of the tiled gradient in 8 px
bands across every core edge divided by the whole gradient's mean |g| in the same band.
"""

import json
import sys

import numpy as np

from engine import caffe_net, tiling


def picture(w, h):
    """(3,H,W) float32 BGR minus mean with edges and texture."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.RandomState(1)
    img = np.stack([100 * np.sin(xx / 9.0), 100 * np.cos(yy / 7.0), (xx + yy) % 256 - 128], axis=0)
    img += rng.normal(0, 12, img.shape).astype(np.float32)
    return np.clip(img, -110, 130).astype(np.float32)


def main(argv):
    layer, w, h, tile = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    margin = int(argv[5]) if len(argv) > 5 else tiling.margin_for(tile)
    net = caffe_net.load_net()
    data = picture(w, h)
    whole = net.input_gradient(data, layer)
    tiled = tiling.tiled_gradient(net, data, layer, tile, margin)
    scale = float(np.abs(whole).mean())
    diff = np.abs(tiled - whole).mean(axis=0)  # (H,W)
    ey = [a for a, _, _, _ in tiling.spans(h, tile, margin)[1:]]
    ex = [a for a, _, _, _ in tiling.spans(w, tile, margin)[1:]]
    dy = np.min(np.abs(np.arange(h)[:, None] - np.array(ey or [10**6])[None, :]), axis=1)
    dx = np.min(np.abs(np.arange(w)[:, None] - np.array(ex or [10**6])[None, :]), axis=1)
    dist = np.minimum(dy[:, None], dx[None, :])
    by_distance = {}
    for lo, hi in ((0, 8), (8, 16), (16, 32), (32, 64), (64, 128), (128, 10**6)):
        m = (dist >= lo) & (dist < hi)
        if m.any():
            by_distance['%d-%d' % (lo, hi)] = round(float(diff[m].mean() / scale), 4)
    bands = []
    gt, gw = np.abs(tiled).mean(axis=0), np.abs(whole).mean(axis=0)  # (H,W)
    for e in ex:
        for lo in range(e - 16, e + 16, 8):
            bands.append(float(gt[:, lo : lo + 8].mean() / gw[:, lo : lo + 8].mean()))
    for e in ey:
        for lo in range(e - 16, e + 16, 8):
            bands.append(float(gt[lo : lo + 8].mean() / gw[lo : lo + 8].mean()))
    print(
        json.dumps(
            dict(
                layer=layer,
                width=w,
                height=h,
                tile=tile,
                margin=margin,
                edges=len(ex) + len(ey),
                by_distance=by_distance,
                mean_rel=round(float(diff.mean() / scale), 4),
                band_ratio_min=round(min(bands), 4),
                band_ratio_max=round(max(bands), 4),
            )
        )
    )


if __name__ == '__main__':
    main(sys.argv)
