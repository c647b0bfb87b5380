"""Zoom animations: the last cell of Google's 2015 notebook, in one container.

    frame = img
    for i in range(100):
        frame = deepdream(net, frame)
        save(np.uint8(frame), 'frames/%04d.jpg' % i)
        frame = nd.affine_transform(frame, [1-s,1-s,1], [h*s/2,w*s/2,0], order=1)

The affine zoom is reimplemented in numpy (`affine_zoom`, the image has no scipy), with
scipy's arithmetic: the same coordinates, taps, weights, products and summation order, so
it equals scipy.ndimage.affine_transform bit for bit (tests/unit/test_engine_zoom.py).
`--rotate DEG` turns each frame by DEG degrees about its centre as well (scipy's general
affine path, mode='nearest' so the corners never go black).

Frames go into <output>/<stem>-zoom-<layer>/NNNN.png as they are made; the frame that
feeds the next one is kept as float32 in .resume.npz (atomically replaced after each frame),
so `--resume FOLDER` continues from the last complete frame and gives the same bytes as an
uninterrupted run: frame i is dreamed with the seed (SEED + i) mod 2**32. At the end ffmpeg
encodes <folder>.mp4 (H.264, yuv420p) and <folder>.gif beside the folder.
"""

import json
import math
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np

from engine import cli, dream, tiling
from engine.images import write_png

DEFAULTS = dict(frames=100, scale=0.05, rotate=0.0, fps=25)
MAX_FRAMES = 9999  # NNNN.png
GIF_MAX_SIDE = 480  # px: a GIF of full-size frames would weigh hundreds of MB
SETTINGS = 'zoom.json'
STATE = '.resume.npz'
GUIDE = 'guide.png'  # a guided zoom's guide as it was dreamed with (long side <= GUIDE_MAX_SIZE)
# what zoom.json records and --resume takes from it
RECORDED = (
    'layer',
    'iterations',
    'octaves',
    'octave_scale',
    'step_size',
    'jitter',
    'seed',
    'frames',
    'scale',
    'rotate',
    'fps',
)


# -----------------------------------------------------------------------------
# the affine zoom (scipy.ndimage.affine_transform, order=1, in numpy)


def zoom_transform(h, w, s, deg=0.0):
    """(matrix, offset) to give scipy.ndimage.affine_transform for a (h,w,3) frame: output
    pixel o samples input matrix @ o + offset. deg=0 is the notebook's own call (a 1-D
    matrix, scipy's zoom_shift path); otherwise a (3,3) matrix zooming by 1-s and turning
    the picture counter-clockwise by deg about the notebook's zoom centre (h/2, w/2)."""
    if not deg:
        return [1 - s, 1 - s, 1], [h * s / 2, w * s / 2, 0]
    t = math.radians(deg)
    c, n = (1 - s) * math.cos(t), (1 - s) * math.sin(t)
    m = np.array([[c, n, 0.0], [-n, c, 0.0], [0.0, 0.0, 1.0]])  # (y,x,channel) rows
    cy, cx = h / 2.0, w / 2.0
    off = [cy - (m[0, 0] * cy + m[0, 1] * cx), cx - (m[1, 0] * cy + m[1, 1] * cx), 0.0]
    return m, off


def _taps(cc, n, mode):
    """Linear taps at input coordinates cc (float64 array) on an axis of length n, as
    scipy's map_coordinate + get_spline_interpolation_weights (order 1) compute them.
    Returns (i0, i1, w0, w1, outside): outside marks mode='constant' samples (cval 0)."""
    outside = np.zeros(cc.shape, bool)
    if mode == 'nearest':
        cc = np.where(cc < 0, 0.0, np.where(cc > n - 1, float(n - 1), cc))
    else:  # constant
        outside = (cc < 0) | (cc > n - 1)
        cc = np.where(outside, 0.0, cc)
    i0 = np.floor(cc)
    w0 = 1.0 - (cc - i0)  # scipy: weights[0] = 1 - x
    w1 = 1.0 - w0  # scipy: the last weight makes them sum to 1
    i0 = i0.astype(np.intp)
    i1 = i0 + 1
    i1 = np.zeros_like(i1) if n <= 1 else np.where(i1 >= n, 2 * n - 2 - i1, i1)  # mirrored
    return i0, i1, w0, w1, outside


def affine_zoom(frame, s=DEFAULTS['scale'], deg=0.0, mode='constant'):
    """frame (H,W,3) float -> the next frame's input (H,W,3), same dtype: zoomed in by 1/(1-s)
    about the centre (and turned by deg). Equals scipy.ndimage.affine_transform(frame,
    *zoom_transform(H, W, s, deg), order=1, mode=mode); the notebook used mode='constant'
    (its zoom never samples outside the picture), rotation uses 'nearest'."""
    H, W, C = frame.shape
    matrix, offset = zoom_transform(H, W, s, deg)
    src = frame.astype(np.float64)
    if not deg:
        # zoom_shift: cc = (k + offset/matrix) * matrix, one axis at a time
        m = np.asarray(matrix, np.float64)
        shift = np.asarray(offset, np.float64) / m
        y0, y1, wy0, wy1, oy = _taps((np.arange(H, dtype=np.float64) + shift[0]) * m[0], H, mode)
        x0, x1, wx0, wx1, ox = _taps((np.arange(W, dtype=np.float64) + shift[1]) * m[1], W, mode)
        Y0, Y1, WY0, WY1 = y0[:, None], y1[:, None], wy0[:, None, None], wy1[:, None, None]  # (H,1..)
        X0, X1, WX0, WX1 = x0[None, :], x1[None, :], wx0[None, :, None], wx1[None, :, None]  # (1,W..)
        outside = oy[:, None] | ox[None, :]  # (H,W)
    else:
        # geometric_transform: cc[i] = sum_j matrix[i,j] * o[j] + offset[i], in that order
        m, off = np.asarray(matrix, np.float64), np.asarray(offset, np.float64)
        oy, ox = np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing='ij')
        cy = (0.0 + oy * m[0, 0] + ox * m[0, 1]) + off[0]  # (H,W); the channel term is 0
        cx = (0.0 + oy * m[1, 0] + ox * m[1, 1]) + off[1]
        Y0, Y1, wy0, wy1, out_y = _taps(cy, H, mode)
        X0, X1, wx0, wx1, out_x = _taps(cx, W, mode)
        WY0, WY1, WX0, WX1 = wy0[..., None], wy1[..., None], wx0[..., None], wx1[..., None]  # (H,W,1)
        outside = out_y | out_x
    # scipy sums the 2x2(x2 channel) taps as ((v * wy) * wx) * wc, y-major; the channel axis
    # has weight 1 on its own tap and adds exact zeros
    out = src[Y0, X0] * WY0 * WX0  # (H,W,C) float64
    out += src[Y0, X1] * WY0 * WX1
    out += src[Y1, X0] * WY1 * WX0
    out += src[Y1, X1] * WY1 * WX1
    if outside.any():
        out[outside] = 0.0  # cval
    return out.astype(frame.dtype)


# -----------------------------------------------------------------------------
# files


def frame_name(i):
    return '%04d.png' % i


def frame_seed(seed, i):
    """The seed of frame i: derived from the run's seed and the frame number only."""
    return (int(seed) + int(i)) % 2**32


def reserve_folder(output_dir, stem):
    """Claim <stem>[-N]/ (mkdir is atomic) whose .mp4 and .gif are free too -> its path."""
    n = 1
    while True:
        cand = stem if n == 1 else '%s-%d' % (stem, n)
        n += 1
        if any(os.path.lexists(os.path.join(output_dir, cand + ext)) for ext in ('.mp4', '.gif', '.png')):
            continue
        d = os.path.join(output_dir, cand)
        try:
            os.mkdir(d)
        except FileExistsError:
            continue
        return d


def _atomic_write(path, write):
    """write(fileobj) into a temporary file beside path, then rename it over path."""
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_state(folder, index, frame):
    """The input of frame `index` (H,W,3) float32, kept for --resume."""
    _atomic_write(
        os.path.join(folder, STATE),
        lambda f: np.savez(f, index=np.int64(index), frame=np.asarray(frame, np.float32)),
    )


def load_state(folder, width, height):
    """(index, frame) of the next frame to make, or Refused-worthy text (ValueError)."""
    path = os.path.join(folder, STATE)
    try:
        with np.load(path, allow_pickle=False) as z:
            index, frame = int(z['index']), np.asarray(z['frame'], np.float32)
    except FileNotFoundError:
        raise ValueError('%s has no %s: it is complete, or it was not made by a zoom' % (folder, STATE))
    except Exception as e:
        raise ValueError('%s is damaged (%s): start the zoom again' % (path, type(e).__name__))
    if frame.shape != (height, width, 3) or not np.isfinite(frame).all():
        raise ValueError('%s does not match %s: start the zoom again' % (path, SETTINGS))
    return index, frame


def read_settings(folder):
    path = os.path.join(folder, SETTINGS)
    try:
        with open(path) as f:
            rec = json.load(f)
    except FileNotFoundError:
        raise ValueError('%s is not a zoom folder (no %s)' % (folder, SETTINGS))
    except (OSError, ValueError) as e:
        raise ValueError('cannot read %s: %s' % (path, e))
    missing = [k for k in RECORDED + ('width', 'height') if k not in rec]
    if missing:
        raise ValueError('%s lacks %s: start the zoom again' % (path, ', '.join(missing)))
    return rec


def write_settings(folder, rec):
    _atomic_write(
        os.path.join(folder, SETTINGS), lambda f: f.write((json.dumps(rec, indent=1) + '\n').encode())
    )


# -----------------------------------------------------------------------------
# video


def _ffmpeg():
    return shutil.which('ffmpeg')


def encode(folder, frames, fps, width, height, threads=None):
    """<folder>.mp4 (H.264, yuv420p, even size) and <folder>.gif (at most GIF_MAX_SIDE px)
    from folder/NNNN.png; each written under a temporary name, then renamed. -> [paths]"""
    exe = _ffmpeg()
    if not exe:
        raise RuntimeError('ffmpeg is missing from the image: rebuild it with ddctl build')
    threads = str(threads or max(1, min(8, os.cpu_count() or 1)))
    inp = ['-framerate', str(fps), '-start_number', '0', '-i', os.path.join(folder, '%04d.png')]
    inp += ['-frames:v', str(frames)]
    big = max(width, height)
    if big > GIF_MAX_SIDE:
        gw, gh = (
            (GIF_MAX_SIDE, max(1, round(height * GIF_MAX_SIDE / width)))
            if width >= height
            else (max(1, round(width * GIF_MAX_SIDE / height)), GIF_MAX_SIDE)
        )
        scale = 'scale=%d:%d:flags=lanczos,' % (gw, gh)
    else:
        scale = ''
    jobs = [
        (
            '.mp4',
            [
                '-vf',
                'pad=ceil(iw/2)*2:ceil(ih/2)*2',
                '-c:v',
                'libx264',
                '-pix_fmt',
                'yuv420p',
                '-crf',
                '18',
                '-movflags',
                '+faststart',
                '-threads',
                threads,
                '-f',
                'mp4',
            ],
        ),
        (
            '.gif',
            [
                '-vf',
                scale + 'split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither=sierra2_4a',
                '-loop',
                '0',
                '-f',
                'gif',
            ],
        ),
    ]
    paths = []
    for ext, args in jobs:
        final = folder.rstrip('/') + ext
        paths.append(final)
        if os.path.exists(final):  # a resumed run whose encoding had finished
            continue
        fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix=ext, dir=os.path.dirname(final))
        os.close(fd)
        cmd = [exe, '-hide_banner', '-nostdin', '-loglevel', 'error', '-y'] + inp + args + [tmp]
        try:
            r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if r.returncode != 0:
                err = ' '.join(r.stderr.decode('utf-8', 'replace').split())[-300:]
                raise RuntimeError('ffmpeg failed making %s: %s' % (os.path.basename(final), err))
            os.chmod(tmp, 0o644)
            os.link(tmp, final)  # never replaces a file someone made meanwhile
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return paths


# -----------------------------------------------------------------------------
# the mode


def add_arguments(p):
    g = p.add_argument_group('--mode zoom (the notebook\'s zoom animation)')
    g.add_argument('--frames', default=None, metavar='N', help='frames (default 100)')
    g.add_argument(
        '--scale', default=None, metavar='S', help='zoom per frame, the notebook\'s s (default 0.05)'
    )
    g.add_argument('--rotate', default=None, metavar='DEG', help='degrees turned per frame (default 0)')
    g.add_argument('--fps', default=None, metavar='F', help='frames per second of the video (default 25)')
    g.add_argument(
        '--resume',
        default=None,
        metavar='FOLDER',
        help='continue the zoom in FOLDER (relative to --output-dir)',
    )
    g.add_argument(
        '--note',
        default=None,
        metavar='JSON',
        help='a JSON object kept as it is in zoom.json as "note" (ddctl: how it named --model '
        'and --guide, so that --resume can give and check the same)',
    )


def parse(a, number):
    """Check the zoom options in place (number is cli._number, limits in engine/limits.py)."""
    for name in ('frames', 'scale', 'rotate', 'fps'):
        if getattr(a, name) is not None:
            setattr(a, name, number(getattr(a, name), '--' + name, name))
    if a.note is not None:
        try:
            a.note = json.loads(a.note)
        except ValueError:
            a.note = None
            raise cli.Refused('--note is a JSON object, e.g. {"model": "/nets/x"}')
        if not isinstance(a.note, dict):
            raise cli.Refused('--note is a JSON object, e.g. {"model": "/nets/x"}')


def run(a, ctx):
    """Dream the frames, then encode the videos. ctx: engine.cli.Context."""
    out_dir = a.output_dir
    cli.check_output_dir(out_dir)
    if a.resume is not None:
        folder = os.path.join(out_dir, a.resume)
        try:
            rec = read_settings(folder)
            first, frame = load_state(folder, rec['width'], rec['height'])
        except ValueError as e:
            raise cli.Refused(str(e))
        if a.guide is not None:
            raise cli.Refused('--guide cannot change when a zoom is resumed: the zoom keeps its own')
        shown = rec.get('source', folder)
        guide = cli.load_guide(os.path.join(folder, GUIDE), out_dir) if rec.get('guide') else None
    else:
        if not a.source:
            raise cli.Refused(
                'give a picture: python3 -m engine --mode zoom SOURCE [LAYER] (or --resume FOLDER)'
            )
        img, shown, stem = cli.load_picture(a.source, out_dir, a.max_size)
        rec = {k: getattr(a, k, None) for k in RECORDED}
        for k, v in DEFAULTS.items():
            if rec[k] is None:
                rec[k] = v
        rec['seed'] = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), 'little')
        rec.update(source=shown, width=int(img.shape[1]), height=int(img.shape[0]), complete=False)
        rec.update(tile=tiling.resolve_tile(a.tile, img.shape[0], img.shape[1]), mean=a.mean)
        guide = cli.load_guide(a.guide, out_dir) if a.guide is not None else None
        rec.update(guide=guide[1] if guide else None, note=a.note)
        first, frame = 0, np.float32(img)  # (H,W,3) the notebook's np.float32(PIL.Image.open(...))

    if not _ffmpeg():
        raise cli.Failure('ffmpeg is missing from the image: rebuild it with ddctl build')
    if a.resume is not None:
        a.mean = rec.get('mean')  # the model's mean the zoom was started with
    net = ctx.load_net(a)
    H, W, N = rec['height'], rec['width'], int(rec['frames'])
    end = cli.objective_for(net, rec['layer'], H, W, rec['octaves'], rec['octave_scale'], guide)

    if a.resume is None:
        name = cli.safe_stem(a.name) if a.name else stem
        what = cli.layer_stem(rec['layer']) + ('-guided' if guide else '')
        folder = reserve_folder(out_dir, '%s-zoom-%s' % (name, what))
        if guide is not None:  # --resume dreams with these very pixels
            _atomic_write(os.path.join(folder, GUIDE), lambda f: write_png(f, guide[0]))
        write_settings(folder, rec)
        save_state(folder, 0, frame)
    steps = rec['octaves'] * rec['iterations']
    events = ctx.events
    events.emit(
        'start',
        mode='zoom',
        source=shown,
        layer=rec['layer'],
        width=W,
        height=H,
        octaves=rec['octaves'],
        iterations=rec['iterations'],
        steps_total=steps,
        seed=rec['seed'],
        frames=N,
        first_frame=first,
        folder=folder,
        scale=rec['scale'],
        rotate=rec['rotate'],
        fps=rec['fps'],
        **({'guide': rec['guide']} if rec.get('guide') else {}),
    )
    t0 = time.monotonic()
    for i in range(first, N):
        frame = dream.deepdream(
            net,
            frame,
            iter_n=rec['iterations'],
            octave_n=rec['octaves'],
            octave_scale=rec['octave_scale'],
            end=end,
            step_size=rec['step_size'] if rec['step_size'] is not None else 1.5,
            jitter=rec['jitter'] if rec['jitter'] is not None else 32,
            rng=np.random.RandomState(frame_seed(rec['seed'], i)),
            progress=cli.step_events(events, steps, t0, frame=i),
            tile=rec.get('tile', 0),
        )  # (H,W,3) float32 RGB
        path = os.path.join(folder, frame_name(i))
        vis = dream.to_uint8(frame)
        _atomic_write(path, lambda f, vis=vis: write_png(f, vis))
        ctx.written.append(path)
        frame = affine_zoom(frame, rec['scale'], rec['rotate'], 'nearest' if rec['rotate'] else 'constant')
        save_state(folder, i + 1, frame)
        events.emit(
            'frame',
            frame=i + 1,
            frames_total=N,
            path=path,
            elapsed=round(time.monotonic() - t0, 2),
        )
    events.emit('encoding', frames=N, fps=rec['fps'])
    try:
        videos = encode(folder, N, rec['fps'], W, H)
    except RuntimeError as e:
        raise cli.Failure(str(e))
    for p in videos:
        ctx.written.append(p)
        events.emit('saved', kind='video' if p.endswith('.mp4') else 'gif', path=p)
    rec['complete'] = True
    write_settings(folder, rec)
    try:
        os.unlink(os.path.join(folder, STATE))
    except FileNotFoundError:
        pass
    events.emit('done', path=videos[0], folder=folder, gif=videos[1], elapsed=round(time.monotonic() - t0, 2))
    return 0
