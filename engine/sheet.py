"""Contact sheets: the same picture dreamed on several layers (or channels), side by side.

The seed's blog post compares layers by running them one by one and looking at the
pictures; here the net is loaded once and every cell is dreamed with the same seed (the
same jitter), so the cells differ only by what they amplify. One PNG: a grid of cells, each
labelled with its layer (or LAYER:CHANNEL, the objective grammar of engine/objectives.py)
in DejaVu Sans (Debian's fonts-dejavu-core in the image).
"""

import math
import os
import re
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine import cli, dream, tiling
from engine.images import save_png_new

MAX_CELLS = 256
FONT = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf'
GAP = 4  # px between cells
BACKGROUND = (24, 24, 24)
INK = (240, 240, 240)


# -----------------------------------------------------------------------------
# what the cells are


def parse_channels(spec):
    """'LAYER:0-15' or 'LAYER:0,3,7-9' -> (LAYER, [channels]); ValueError says what is wrong."""
    layer, sep, rest = spec.rpartition(':')
    if not sep or not layer or not rest:
        raise ValueError('--channels is LAYER:FIRST-LAST (e.g. inception_4c/output:0-15), got %r' % spec)
    chans: list = []
    for part in rest.split(','):
        m = re.match(r'^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$', part)
        if not m:
            raise ValueError('--channels: %r is not a channel number or range FIRST-LAST' % part)
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError('--channels: the range %r goes backwards; write %d-%d' % (part, hi, lo))
        if hi - lo >= MAX_CELLS:
            raise ValueError('--channels: at most %d cells in one sheet' % MAX_CELLS)
        chans.extend(c for c in range(lo, hi + 1) if c not in chans)
    return layer, chans


def split_layers(spec):
    """--layers L1,L2,... -> [L1, L2, ...]; each may be an objective (engine/objectives.py),
    and a comma followed by a channel number belongs to the objective before it:
    'a,b:1,2,c*0.5+d' -> ['a', 'b:1,2', 'c*0.5+d']."""
    out: list = []
    for part in (x.strip() for x in spec.split(',')):
        if not part:
            continue
        if (
            out
            and part.isdigit()
            and ':' in out[-1].rpartition('+')[2]
            and '*' not in out[-1].rpartition('+')[2]
        ):
            out[-1] += ',' + part
        else:
            out.append(part)
    return out


def cells_of(layers_spec, channels_spec, dreamable):
    """[(label, objective text)] for the sheet; dreamable: [LayerInfo]. Raises ValueError."""
    names = [info.name for info in dreamable]
    cells = []
    if layers_spec is not None and channels_spec is not None:
        raise ValueError(
            'give --layers or --channels, not both (a sheet compares layers, or the channels of '
            'one layer); --layers also takes channels: --layers a,b,c:0,c:1'
        )
    if layers_spec is not None:
        spec = layers_spec.strip()
        if spec == 'all':
            wanted = names
        else:
            wanted = split_layers(spec)
            if not wanted:
                raise ValueError('--layers is all or a comma-separated list of layers, got %r' % layers_spec)
        cells += [(x, x) for x in wanted]
    if channels_spec is not None:
        layer, chans = parse_channels(channels_spec)
        info = {i.name: i for i in dreamable}.get(layer)
        if info is None:
            raise ValueError('--channels: unknown layer %r: choose one of %s' % (layer, ', '.join(names)))
        bad = [c for c in chans if c >= int(info.channels)]
        if bad:
            raise ValueError(
                '--channels: %s has channels 0-%d, not %s' % (layer, int(info.channels) - 1, bad[0])
            )
        cells += [('%s:%d' % (layer, c), '%s:%d' % (layer, c)) for c in chans]
    if not cells:
        raise ValueError('give --layers all|L1,L2,... or --channels LAYER:0-15')
    if len(cells) > MAX_CELLS:
        raise ValueError('%d cells: at most %d in one sheet' % (len(cells), MAX_CELLS))
    return cells


# -----------------------------------------------------------------------------
# drawing


def _font(size):
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:  # no DejaVu (a host without fonts): Pillow's own bitmap font
        return ImageFont.load_default()


def _text_size(draw, text, font):
    if hasattr(draw, 'textbbox'):
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
        return x1 - x0, y1 - y0
    return draw.textsize(text, font=font)  # pragma: no cover (Pillow < 8)


def label_font(text, width):
    """The largest readable DejaVu size (11..24 px, by cell width) that fits text in width."""
    probe = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    size = max(11, min(24, width // 16))
    while size > 8:
        font = _font(size)
        if _text_size(probe, text, font)[0] <= width - 8:
            return font
        size -= 1
    return _font(8)


def grid(cells, labels, columns=None):
    """cells [(h,w,3) uint8] (same size), labels [str] -> the sheet (H,W,3) uint8: a grid
    of cells, each with its label on a strip under it."""
    n = len(cells)
    h, w = cells[0].shape[:2]
    cols = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / float(cols)))
    strip = max(11, min(24, w // 16)) + 10  # label strip height
    W = cols * w + (cols + 1) * GAP
    H = rows * (h + strip) + (rows + 1) * GAP
    sheet = Image.new('RGB', (W, H), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for k, (cell, text) in enumerate(zip(cells, labels)):
        r, c = divmod(k, cols)
        x, y = GAP + c * (w + GAP), GAP + r * (h + strip + GAP)
        sheet.paste(Image.fromarray(np.ascontiguousarray(cell, np.uint8), 'RGB'), (x, y))
        font = label_font(text, w)
        tw, th = _text_size(draw, text, font)
        draw.text((x + max(4, (w - tw) // 2), y + h + (strip - th) // 2 - 1), text, fill=INK, font=font)
    return np.asarray(sheet, dtype=np.uint8).copy()


def cell_boxes(n, h, w, columns=None):
    """[(x, y, w, h)] of each cell's picture in a grid() sheet (for tests and readers)."""
    cols = columns or int(math.ceil(math.sqrt(n)))
    strip = max(11, min(24, w // 16)) + 10
    return [(GAP + (k % cols) * (w + GAP), GAP + (k // cols) * (h + strip + GAP), w, h) for k in range(n)]


# -----------------------------------------------------------------------------
# the mode


def add_arguments(p):
    g = p.add_argument_group('--mode sheet (one cell per layer or channel)')
    g.add_argument(
        '--layers',
        default=None,
        metavar='all|L1,L2',
        help='the layers of the cells (default: LAYER, which may be a list)',
    )
    g.add_argument('--channels', default=None, metavar='LAYER:0-15', help='one cell per channel of LAYER')


def parse(a, number):
    """Nothing to convert: the cells are checked against the net in run()."""


def run(a, ctx):
    events = ctx.events
    out_dir = a.output_dir
    if not a.source:
        raise cli.Refused('give a picture: python3 -m engine --mode sheet SOURCE --layers all|L1,L2,...')
    if a.layers is None and a.channels is None:
        a.layers = a.layer  # the 2015 positional LAYER: all, or L1,L2,...
    cli.check_output_dir(out_dir)
    img, shown, stem = cli.load_picture(a.source, out_dir, a.max_size)
    net = ctx.load_net(a)
    try:
        cells = cells_of(a.layers, a.channels, cli.dreamable_layers(net))
    except ValueError as e:
        raise cli.Refused(str(e), code='unknown_layer' if 'unknown layer' in str(e) else 'bad_input')
    H, W = img.shape[:2]
    guide = cli.load_guide(a.guide, out_dir) if a.guide is not None else None
    ends = [cli.objective_for(net, obj, H, W, a.octaves, a.octave_scale, guide) for _, obj in cells]
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), 'little')
    steps = a.octaves * a.iterations
    n = len(cells)
    events.emit(
        'start',
        mode='sheet',
        source=shown,
        layer=','.join(label for label, _ in cells),
        width=W,
        height=H,
        octaves=a.octaves,
        iterations=a.iterations,
        steps_total=steps,
        seed=seed,
        cells=n,
        **({'guide': guide[1]} if guide else {}),
    )
    t0 = time.monotonic()
    pictures = []
    for k, ((label, _), end) in enumerate(zip(cells, ends)):
        out = dream.deepdream(
            net,
            img,
            iter_n=a.iterations,
            octave_n=a.octaves,
            octave_scale=a.octave_scale,
            end=end,
            step_size=a.step_size,
            jitter=a.jitter,
            rng=np.random.RandomState(seed),
            progress=cli.step_events(events, steps, t0, cell=k),
            tile=tiling.resolve_tile(a.tile, H, W),
        )
        pictures.append(dream.to_uint8(out))
        events.emit('cell', cell=k + 1, cells_total=n, label=label, elapsed=round(time.monotonic() - t0, 2))
    if a.layers is not None and a.layers.strip() == 'all' and a.channels is None:
        what = 'all-layers'
    elif a.channels is not None and a.layers is None:
        what = cli.layer_stem(cells[0][0].rpartition(':')[0]) + '-channels'
    else:
        what = '%d-cells' % n
    if guide is not None:
        what += '-guided'
    name = cli.safe_stem(a.name) if a.name else stem
    sheet = grid(pictures, [label for label, _ in cells])
    path = save_png_new(sheet, out_dir, '%s-sheet-%s-i%d-o%d' % (name, what, a.iterations, a.octaves))
    ctx.written.append(path)
    events.emit('saved', kind='sheet', path=path)
    events.emit('done', path=path, elapsed=round(time.monotonic() - t0, 2), cells=n)
    return 0
