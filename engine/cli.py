"""The container's command line (`python3 -m engine`), per README "Contracts between the parts".

    [options] [--] SOURCE [LAYER] [ITERATIONS] [OCTAVES] [OCTAVE_SCALE]
    options: [--step-size F] [--jitter PX] [--seed N] [--save-steps] [--max-size PX]
    [--output-dir DIR] [--name STEM] [--progress auto|json|text] [--list-layers]
    [--weights PATH] [--prototxt PATH] [--exit-with-stdin] [--mean B,G,R] [--guide PICTURE]
    [--tile PX] [--batch [--force]]

Everything after `--` is a positional (ddctl always puts them there), so a LAYER such as
`--output-dir=/x` is a layer name, never an option. Numbers are checked against
engine/limits.py (ddctl checks the same table on the host).
LAYER is a blob name or the objective grammar of engine/objectives.py (channels, several
blobs with weights); --guide makes it the notebook's guided dream on that blob.

--tile PX: octaves bigger than PX x PX get their gradient crop by crop (engine/tiling.py).
--batch: SOURCE is a folder or a list of pictures, dreamed one after the other with the net
loaded once (engine/batch.py).

Exit codes: 0 done, 2 refused input, 1 internal failure, 130 interrupted; with --batch,
3 when some pictures failed (the others are dreamed).
Progress: one JSON object per line on stdout (default when stdout is not a terminal),
readable lines on a terminal. main() takes the net factory as an argument, so everything
but engine/caffe_net.py runs (and is tested) without caffe.
"""

import argparse
import importlib
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import numpy as np

from engine import dream, objectives, tiling
from engine.images import PictureError, load_rgb, save_png_new
from engine.limits import LIMITS

DEFAULT_WEIGHTS = '/opt/ddctl/model/bvlc_googlenet.caffemodel'
DEFAULT_PROTOTXT = '/opt/ddctl/model/deploy.prototxt'
DEFAULTS = dict(
    layer='inception_4c/output',
    iterations=10,
    octaves=4,
    octave_scale=1.4,
    step_size=1.5,
    jitter=32,
    output_dir='/images',
)
# blobs never offered for dreaming: the input, and those that need a 224x224 input
NOT_DREAMABLE = {'data', 'prob', 'loss3/classifier', 'pool5/7x7_s1', 'pool5/drop_7x7_s1'}
URL_TIMEOUT = 30  # seconds
URL_MAX_BYTES = 50 << 20  # 50 MiB
GUIDE_MAX_SIZE = 512  # px, long side of a guide (the notebook kept its guide small)
# modes besides the plain dream, each in its own module: add_arguments(parser),
# parse(args, _number), run(args, Context)
MODES = ('zoom', 'sheet')


class Refused(Exception):
    """Refused input: exit 2 with one line. code is the contract's error code."""

    def __init__(self, message, code='bad_input'):
        Exception.__init__(self, message)
        self.code = code


# -----------------------------------------------------------------------------
# arguments


class Failure(Exception):
    """An expected internal failure (exit 1, no traceback); str() says what to do."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise Refused('%s (see python3 -m engine --help)' % message)


def build_parser():
    p = _Parser(prog='python3 -m engine', description='DeepDream a picture (Google 2015 notebook algorithm).')
    p.add_argument(
        'source', nargs='?', metavar='SOURCE', help='picture file (relative to --output-dir) or http(s) URL'
    )
    p.add_argument(
        'layer',
        nargs='?',
        metavar='LAYER',
        help='blob to amplify (default inception_4c/output; see --list-layers), or an objective: '
        'LAYER:CH[,CH...] for channels, LAYER*W+LAYER*W for several blobs',
        default=DEFAULTS['layer'],
    )
    p.add_argument(
        'iterations', nargs='?', metavar='ITERATIONS', default='10', help='steps per octave (default 10)'
    )
    p.add_argument('octaves', nargs='?', metavar='OCTAVES', default='4', help='number of scales (default 4)')
    p.add_argument(
        'octave_scale',
        nargs='?',
        metavar='OCTAVE_SCALE',
        default='1.4',
        help='size ratio between scales (default 1.4)',
    )
    p.add_argument('--step-size', default='1.5', metavar='F', help='ascent step (default 1.5)')
    p.add_argument('--jitter', default='32', metavar='PX', help='random shift in pixels (default 32)')
    p.add_argument('--seed', default=None, metavar='N', help='seed of the jitter, for a repeatable picture')
    p.add_argument(
        '--save-steps', action='store_true', help='save every step as <layer>-<octave>-<iteration>.png'
    )
    p.add_argument('--max-size', default=None, metavar='PX', help='downscale so the long side is at most PX')
    p.add_argument(
        '--output-dir',
        default=DEFAULTS['output_dir'],
        metavar='DIR',
        help='where pictures are read from and written to (default /images)',
    )
    p.add_argument(
        '--name', default=None, metavar='STEM', help='stem of the final picture (default SOURCE\'s)'
    )
    p.add_argument('--progress', choices=['auto', 'json', 'text'], default='auto')
    p.add_argument(
        '--mode',
        choices=('dream',) + MODES,
        default='dream',
        help='dream (default): one picture; zoom: the notebook\'s zoom animation; sheet: one cell per layer',
    )
    p.add_argument('--list-layers', action='store_true', help='list the layers one can dream on')
    p.add_argument(
        '--exit-with-stdin',
        action='store_true',
        help='stop (as on SIGTERM) when standard input closes: ddctl attaches it, so a dream '
        'never outlives the ddctl that started it',
    )
    p.add_argument(
        '--weights',
        metavar='PATH',
        default=os.environ.get('DDCTL_WEIGHTS') or DEFAULT_WEIGHTS,
        help='caffemodel (default $DDCTL_WEIGHTS or %s)' % DEFAULT_WEIGHTS,
    )
    p.add_argument(
        '--prototxt',
        metavar='PATH',
        default=os.environ.get('DDCTL_PROTOTXT') or DEFAULT_PROTOTXT,
        help='deploy.prototxt (default $DDCTL_PROTOTXT or %s)' % DEFAULT_PROTOTXT,
    )
    p.add_argument(
        '--mean',
        default=None,
        metavar='B,G,R',
        help='the model\'s mean pixel, blue,green,red (default 104,116,122: bvlc_googlenet)',
    )
    p.add_argument(
        '--tile',
        default='auto',
        metavar='PX',
        help='compute the gradient of bigger pictures in crops of at most PX x PX, so memory '
        'depends on PX, not the picture; 0: the whole picture at once; auto (default): whole up '
        'to 1280x1024 pixels, %d above' % tiling.DEFAULT_TILE,
    )
    p.add_argument(
        '--batch',
        action='store_true',
        help='SOURCE is a folder (every picture in it) or a file listing pictures, one a line: '
        'dream them all with the net loaded once; a picture that fails is reported and skipped',
    )
    p.add_argument(
        '--force',
        action='store_true',
        help='with --batch: dream pictures whose result already exists (default: skip them)',
    )
    p.add_argument(
        '--check-model',
        action='store_true',
        help='with --list-layers: first check that the weights fit the prototxt (a model you bring)',
    )
    p.add_argument(
        '--guide',
        default=None,
        metavar='PICTURE',
        help='guided dream: amplify what looks like this picture (file relative to --output-dir, or URL)',
    )
    for mode in MODES:
        importlib.import_module('engine.' + mode).add_arguments(p)
    return p


def _number(text, what, name):
    """text -> the number LIMITS[name] allows; Refused (naming `what`) otherwise."""
    kind, lo, hi, lo_ok = LIMITS[name]
    conv = int if kind == 'int' else float
    try:
        v = conv(text)
    except (TypeError, ValueError, OverflowError):
        v = None
    bad = (
        v is None
        or (kind == 'float' and not math.isfinite(v))
        or v < lo
        or (v == lo and not lo_ok)
        or (hi is not None and v > hi)
    )
    if bad:
        noun = 'a whole number' if kind == 'int' else 'a number'
        if hi is None:
            rng = ('at least %s' if lo_ok else 'more than %s') % lo
        else:
            rng = ('from %s to %s' if lo_ok else 'more than %s, at most %s') % (lo, hi)
        raise Refused('%s must be %s %s, got %r' % (what, noun, rng, text))
    return v


def _mean(text):
    """'B,G,R' -> [b, g, r] floats from 0 to 255; Refused otherwise."""
    try:
        v = [float(x) for x in text.split(',')]
    except ValueError:
        v = []
    if len(v) != 3 or not all(math.isfinite(x) and 0 <= x <= 255 for x in v):
        raise Refused(
            '--mean is three numbers from 0 to 255, blue,green,red (e.g. 104,117,123), got %r' % text
        )
    return v


POSITIONALS = ('source', 'layer', 'iterations', 'octaves', 'octave_scale')


def parse_args(argv):
    argv = list(argv)
    tail = None
    if '--' in argv:  # argparse's intermixed parsing mishandles `--`: split it here
        i = argv.index('--')
        argv, tail = argv[:i], argv[i + 1 :]
    a = build_parser().parse_intermixed_args(argv)
    if tail is not None:
        if a.source is not None:
            raise Refused('give SOURCE [LAYER] ... either before or after --, not both')
        if len(tail) > len(POSITIONALS):
            raise Refused(
                'unrecognized arguments: %s (see python3 -m engine --help)'
                % ' '.join(tail[len(POSITIONALS) :])
            )
        for name, value in zip(POSITIONALS, tail):
            setattr(a, name, value)
    a.iterations = _number(a.iterations, 'ITERATIONS', 'iterations')
    a.octaves = _number(a.octaves, 'OCTAVES', 'octaves')
    a.octave_scale = _number(a.octave_scale, 'OCTAVE_SCALE', 'octave_scale')
    a.step_size = _number(a.step_size, '--step-size', 'step_size')
    a.jitter = _number(a.jitter, '--jitter', 'jitter')
    if a.seed is not None:
        a.seed = _number(a.seed, '--seed', 'seed')
    if a.max_size is not None:
        a.max_size = _number(a.max_size, '--max-size', 'max_size')
    if a.mean is not None:
        a.mean = _mean(a.mean)
    if a.tile != 'auto':
        a.tile = _number(a.tile, '--tile', 'tile')
    if a.tile != 'auto' and 0 < a.tile < tiling.MIN_TILE:
        raise Refused('--tile must be 0 (no tiles) or at least %d, got %d' % (tiling.MIN_TILE, a.tile))
    if a.name is not None and (
        not a.name.strip() or '/' in a.name or '\0' in a.name or a.name.strip() in ('.', '..')
    ):
        raise Refused('--name is a file name stem without folders, got %r' % a.name)
    for mode in MODES:
        importlib.import_module('engine.' + mode).parse(a, _number)
    return a


def _progress_mode_of(argv, stdout):
    """The progress mode, also when the arguments themselves are refused."""
    mode = 'auto'
    for i, arg in enumerate(argv):
        if arg == '--progress' and i + 1 < len(argv):
            mode = argv[i + 1]
        elif arg.startswith('--progress='):
            mode = arg.split('=', 1)[1]
    if mode not in ('json', 'text'):
        mode = 'text' if _isatty(stdout) else 'json'
    return mode


def _isatty(stream):
    try:
        return stream.isatty()
    except Exception:
        return False


# -----------------------------------------------------------------------------
# progress events


class Events:
    """Emits the contract's events: JSON lines, or readable lines for a terminal."""

    def __init__(self, mode, stdout, stderr):
        self.json, self.out, self.err = mode == 'json', stdout, stderr

    def emit(self, event, **fields):
        obj = dict(event=event, **fields)
        if self.json:
            self._write(self.out, json.dumps(obj))
        elif event == 'error':
            self._write(self.err, 'error: %s' % fields['message'])
        else:
            self._write(self.out, self._text(obj))

    @staticmethod
    def _write(stream, line):
        try:
            stream.write(line + '\n')
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # nobody listens any more; the pictures are still written

    @staticmethod
    def _text(e):
        kind = e['event']
        if kind == 'start':
            return (
                'dreaming on %(source)s (%(width)dx%(height)d), layer %(layer)s%(guided)s: '
                '%(octaves)d octaves x %(iterations)d iterations = %(steps_total)d steps'
                % dict(e, guided=' guided by %s' % e['guide'] if e.get('guide') else '')
            )
        if kind == 'step':
            return 'step %3d/%d  octave %d  iteration %d  %dx%d  %.1fs' % (
                e['step'],
                e['steps_total'],
                e['octave'],
                e['iteration'],
                e['width'],
                e['height'],
                e['elapsed'],
            )
        if kind == 'saved':
            return 'saved %s' % e['path']
        if kind == 'done':
            return 'done in %.1fs: %s' % (e['elapsed'], e['path'])
        if kind == 'batch':
            return 'batch of %d pictures' % e['total']
        if kind == 'item':
            extra = {'failed': ': %s' % (e.get('record') or {}).get('error'), 'skipped': ' (result exists)'}
            return '[%d/%d] %s %s%s' % (
                e['index'],
                e['total'],
                e['status'],
                e['source'],
                extra.get(e['status'], ''),
            )
        if kind == 'batch_done':
            return 'batch done in %.1fs: %d dreamed, %d failed, %d skipped' % (
                e['elapsed'], e['done'], e['failed'], e['skipped'],
            )  # fmt: skip
        if kind == 'frame':
            return 'frame %d/%d  %.1fs  %s' % (e['frame'], e['frames_total'], e['elapsed'], e['path'])
        if kind == 'cell':
            return 'cell %d/%d  %s  %.1fs' % (e['cell'], e['cells_total'], e['label'], e['elapsed'])
        if kind == 'encoding':
            return 'encoding %d frames at %g fps' % (e['frames'], e['fps'])
        return json.dumps(e)


# -----------------------------------------------------------------------------
# input


def _kept(c):
    return c in '._+-' or unicodedata.category(c)[0] in 'LNM'


def _safe_stem(text):
    """A file name stem: letters, digits and marks of any script (NFC), . _ + -; each run of
    anything else one '_'; at most 80 characters and 120 bytes of UTF-8; no leading or
    trailing . _ -. ddctl's stems (ddctl/run/naming.py) are left as they are."""
    out = []
    for c in unicodedata.normalize('NFC', text):
        if _kept(c):
            out.append(c)
        elif not out or out[-1] != '\0':
            out.append('\0')
    stem = ''.join(out).replace('\0', '_')[:80]
    while len(stem.encode('utf-8')) > 120:
        stem = stem[:-1]
    return stem.strip('._-') or 'dream'


safe_stem = _safe_stem


def layer_stem(layer):
    """The part of file names that names LAYER (a blob or an objective)."""
    return objectives.stem(layer)


def fetch_url(url, timeout=URL_TIMEOUT, max_bytes=URL_MAX_BYTES):
    """Download a picture -> bytes. Refuses web pages, huge files and failures with one line."""
    req = urllib.request.Request(url, headers={'User-Agent': 'ddctl-engine', 'Accept': 'image/*,*/*;q=0.5'})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            ctype = (r.headers.get('Content-Type') or '').split(';')[0].strip().lower()
            if ctype.startswith('text/') or ctype in (
                'application/json',
                'application/xhtml+xml',
                'application/xml',
            ):
                raise Refused(
                    '%s gave %s, not a picture (an error or web page?): give the '
                    'address of the picture itself' % (url, ctype)
                )
            length = r.headers.get('Content-Length')
            if length and length.isdigit() and int(length) > max_bytes:
                raise Refused(
                    '%s is %d MB, more than the %d MB limit: download and shrink it '
                    'first' % (url, int(length) >> 20, max_bytes >> 20)
                )
            body = r.read(max_bytes + 1)
    except Refused:
        raise
    except urllib.error.HTTPError as e:
        raise Refused('%s answered HTTP %d %s: check the address' % (url, e.code, e.reason))
    except urllib.error.URLError as e:
        raise Refused(
            'cannot fetch %s: %s (the image runs without network under ddctl; '
            'ddctl run downloads URLs itself)' % (url, e.reason)
        )
    except (OSError, ValueError) as e:  # timeouts, resets, malformed URLs
        raise Refused('cannot fetch %s: %s' % (url, e or type(e).__name__))
    if len(body) > max_bytes:
        raise Refused(
            '%s is more than the %d MB limit: download and shrink it first' % (url, max_bytes >> 20)
        )
    return body


def load_source(source, output_dir, max_size):
    """SOURCE -> ((H,W,3) uint8 RGB, display name, default stem)."""
    if re.match(r'^https?://', source, re.I):
        img = load_rgb(fetch_url(source), max_size)
        name = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(source).path))
        return img, source, _safe_stem(os.path.splitext(name)[0])
    if re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*://', source):
        raise Refused('%s: only http:// and https:// addresses or file names are understood' % source)
    path = os.path.join(output_dir, source)  # absolute paths stay as they are
    img = load_rgb(path, max_size)
    return img, path, _safe_stem(os.path.splitext(os.path.basename(path))[0])


# -----------------------------------------------------------------------------
# the net


def writable_numba_cache(env=None):
    """Under a read-only root (ddctl's dream containers) numba refuses a cache folder it
    cannot write to: copy the image's compiled kernels (a few hundred KB) to a scratch
    folder (the container's /tmp tmpfs) and point NUMBA_CACHE_DIR there, before numba loads.
    Returns the folder numba will use, or None when there is none."""
    env = os.environ if env is None else env
    src = env.get('NUMBA_CACHE_DIR')
    if not src or not os.path.isdir(src) or os.access(src, os.W_OK):
        return src or None
    try:
        dst = tempfile.mkdtemp(prefix='numba-cache-')
        shutil.copytree(src, dst, dirs_exist_ok=True)
    except OSError:
        return src  # numba then compiles without its cache, or caffe_net falls back
    env['NUMBA_CACHE_DIR'] = dst
    return dst


def default_net_factory(prototxt, weights):
    for what, path, flag in (('weights', weights, '--weights'), ('prototxt', prototxt, '--prototxt')):
        if not os.path.isfile(path):
            raise Refused(
                '%s file not found: %s (rebuild the image with ddctl build, or '
                'pass %s PATH)' % (what, path, flag)
            )
    writable_numba_cache()
    try:
        from engine.caffe_net import load_net  # the only module that imports caffe
    except ImportError as e:
        raise Failure('caffe is not available here (%s): run the engine inside the ddctl image' % e)
    try:
        return load_net(prototxt, weights)
    except Exception as e:
        if type(e).__name__ not in ('ParseError', 'DecodeError', 'UnicodeDecodeError'):
            raise
        msg = ' '.join(str(e).split())[:200]
        raise Refused(
            'the prototxt %s is not a network Caffe can read: %s' % (os.path.basename(prototxt), msg),
            code='bad_model',
        )


def dreamable_layers(net):
    """[LayerInfo] the user may choose: blob names, no input, no ReLU, no 224x224-only blobs."""
    return [
        layer
        for layer in net.layers()
        if layer.name not in NOT_DREAMABLE and '/relu' not in layer.name and not layer.name.startswith('loss')
    ]


def check_layer(net, layer):
    """LAYER (a blob name or an objective, engine/objectives.py) -> the Objective, or Refused:
    bad grammar, a blob the net lacks, a channel out of range."""
    layers = dreamable_layers(net)
    try:
        objective = objectives.parse(layer, [info.name for info in layers])
        objectives.check(objective, layers)
    except objectives.ObjectiveError as e:
        raise Refused(str(e), code=e.code)
    return objective


def check_octaves(net, layer, h, w, octaves, scale):
    """Refuse octave counts that shrink the picture below what `layer` needs; `layer` is a
    blob name or a list of them (an objective's), the largest need counts."""
    names = [layer] if isinstance(layer, str) else list(layer)
    needs = [(max(int(net.min_input_size(n) or 0), 1), n) for n in names]  # 0: unknown, never 0 px
    need, layer = max(needs)

    def fits(n):
        return min(dream.octave_shapes(h, w, n, scale)[-1]) >= need

    if fits(octaves):
        return
    if not fits(1):
        raise Refused(
            'the picture is %dx%d; layer %s needs at least %d pixels on each side: '
            'use a bigger picture or an earlier layer' % (w, h, layer, need)
        )
    best = max(n for n in range(1, octaves) if fits(n))
    sh, sw = dream.octave_shapes(h, w, octaves, scale)[-1]
    raise Refused(
        '%d octaves shrink the %dx%d picture to %dx%d, too small for layer %s '
        '(needs %d pixels on each side): use at most %d octaves' % (octaves, w, h, sw, sh, layer, need, best),
        code='too_many_octaves',
    )


def guided(net, objective, guide, out_dir):
    """The notebook's guided objective on the one blob of `objective`, for the picture
    `guide` (a file relative to out_dir, or a URL)."""
    _one_blob(objective)  # said before the guide is fetched
    return guided_on(net, objective, *load_guide(guide, out_dir))


def load_guide(guide, out_dir):
    """--guide (a file relative to out_dir, or a URL) -> ((H,W,3) uint8 RGB, display name),
    its long side cut to GUIDE_MAX_SIZE; Refused when it is not a picture."""
    try:
        img, shown, _ = load_source(guide, out_dir, GUIDE_MAX_SIZE)
    except PictureError as e:
        raise Refused('guide: %s' % e)
    return img, shown


def guided_on(net, objective, img, shown):
    """The notebook's guided objective on the one blob of `objective` for the guide picture
    img (H,W,3) uint8 RGB; Refused for an objective that is not one whole blob, or a guide
    too small for it."""
    blob = _one_blob(objective)
    need = max(int(net.min_input_size(blob) or 0), 1)
    if min(img.shape[:2]) < need:
        raise Refused(
            'the guide %s is %dx%d; layer %s needs at least %d pixels on each side: use a bigger guide'
            % (shown, img.shape[1], img.shape[0], blob, need)
        )
    return objectives.guide(net, img, blob)


def _one_blob(objective):
    """The blob of an objective that is one whole blob; Refused otherwise (--guide needs one)."""
    if not objectives.plain_blob(objective):
        raise Refused(
            '--guide works on one whole layer, not on %s: give a single layer name' % objective.spec,
            code='bad_objective',
        )
    return objective.layers[0]


def objective_for(net, layer, h, w, octaves, octave_scale, guide=None):
    """LAYER (a blob or an objective) checked against the net and the picture's octaves ->
    what deepdream's `end` takes: a plain blob name stays a name (the L2, as always);
    guide (a load_guide() pair) makes it the guided objective on that blob."""
    objective = check_layer(net, layer)
    check_octaves(net, objective.layers, h, w, octaves, octave_scale)
    if guide is not None:
        return guided_on(net, objective, *guide)
    return objectives.plain_blob(objective) or objective


class Context:
    """What a mode's run() gets besides its arguments."""

    def __init__(self, net_factory, events, written, state):
        self.net_factory, self.events, self.written, self.state = net_factory, events, written, state

    def load_net(self, a):
        net = self.net_factory(a.prototxt, a.weights)
        if a.mean is not None:
            net.mean = np.asarray(a.mean, dtype=np.float32)  # (3,) BGR of this model
        return net


# -----------------------------------------------------------------------------
# output names


def reserve_steps_dir(output_dir, stem):
    """Claim <stem>[-N]-steps/ (mkdir is atomic) whose <stem>[-N].png is also free.
    Returns (final stem, steps dir)."""
    n = 1
    while True:
        cand = stem if n == 1 else '%s-%d' % (stem, n)
        n += 1
        if os.path.lexists(os.path.join(output_dir, cand + '.png')):
            continue
        d = os.path.join(output_dir, cand + '-steps')
        try:
            os.mkdir(d)
        except FileExistsError:
            continue
        return cand, d


def check_output_dir(out_dir):
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise Refused('cannot create the output folder %s: %s' % (out_dir, e.strerror))
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise Refused(
            'cannot write to %s (uid %d): mount a folder this user may write, or '
            'give --output-dir' % (out_dir, os.getuid())
        )


def load_picture(source, out_dir, max_size):
    """load_source with picture problems Refused."""
    try:
        return load_source(source, out_dir, max_size)
    except PictureError as e:
        raise Refused(str(e))


def _run(a, net_factory, events, written, state):
    out_dir = a.output_dir
    if not a.list_layers and not a.source:
        raise Refused(
            'give a picture: python3 -m engine SOURCE [LAYER] [ITERATIONS] [OCTAVES] '
            '[OCTAVE_SCALE] (or --list-layers)'
        )
    if not a.list_layers:
        check_output_dir(out_dir)
        if a.batch:
            from engine import batch  # batch mode, a module of its own

            items = batch.read_items(a.source, out_dir)
        else:
            img, shown, stem = load_picture(a.source, out_dir, a.max_size)

    net = net_factory(a.prototxt, a.weights)
    if a.list_layers and a.check_model:
        problem = net.check_model() if hasattr(net, 'check_model') else None
        if problem:
            raise Refused(problem, code='bad_model')
    if a.list_layers:
        rows = [
            dict(name=layer.name, channels=int(layer.channels), stride=int(layer.stride))
            for layer in dreamable_layers(net)
        ]
        if events.json:
            events._write(events.out, json.dumps({'layers': rows}))
        else:
            for r in rows:
                events._write(
                    events.out, '%-28s %5d channels  stride %d' % (r['name'], r['channels'], r['stride'])
                )
        return 0

    if a.mean is not None:
        net.mean = np.asarray(a.mean, dtype=np.float32)  # (3,) BGR of this model
    objective = check_layer(net, a.layer)
    if a.batch:
        if a.guide is not None:
            objective = guided(net, objective, a.guide, out_dir)
        return batch.run(a, net, objective, items, events, written, state)
    dream_picture(a, net, objective, img, shown, stem, events, written, state)
    return 0


def final_stem_of(a, stem):
    """The final picture's name without .png, before any -2, -3 (README: Files)."""
    layer_stem = objectives.stem(a.layer) + ('-guided' if a.guide is not None else '')
    return '%s-%s-i%d-o%d' % (stem, layer_stem, a.iterations, a.octaves)


def step_events(events, steps_total, t0, after=None, **where):
    """engine.dream's progress callback for one dream: a `step` event per step (README
    "Progress": step counted from 1, octave and iteration from 0, the octave's size, seconds
    since t0), then `where` (zoom's frame=i, sheet's cell=k); after(octave, iteration, data)
    follows the event (--save-steps)."""
    count = [0]

    def progress(octave, iteration, data):  # data (3,h,w) float32 BGR
        count[0] += 1
        h, w = data.shape[-2:]
        events.emit(
            'step',
            step=count[0],
            steps_total=steps_total,
            octave=octave,
            iteration=iteration,
            width=w,
            height=h,
            elapsed=round(time.monotonic() - t0, 2),
            **where,
        )
        if after is not None:
            after(octave, iteration, data)

    return progress


def dream_picture(a, net, objective, img, shown, stem, events, written, state):
    """Dream on one picture (H,W,3) uint8 and save it; emits start, step, saved, done.
    objective: from check_layer (guided here when a.guide is a picture still to load).
    Returns {'path', 'seed', 'elapsed'}."""
    out_dir = a.output_dir
    H, W = img.shape[:2]
    try:
        check_octaves(net, objective.layers, H, W, a.octaves, a.octave_scale)
    except Refused as e:
        if a.max_size and max(H, W) == a.max_size:  # the picture was shrunk to fit --max-size
            raise Refused(
                '%s (--max-size %d shrank the picture to %dx%d: a larger --max-size, or 0 for the '
                'full size, keeps more pixels)' % (str(e), a.max_size, W, H),
                code=e.code,
            )
        raise
    guide_shown = None
    if a.guide is not None:
        if not getattr(objective, 'guided', False):  # batch mode made it once already
            objective = guided(net, objective, a.guide, out_dir)
        guide_shown = a.guide

    layer_stem = objectives.stem(a.layer) + ('-guided' if guide_shown else '')
    final_stem = final_stem_of(a, _safe_stem(a.name) if a.name else stem)
    steps_dir = None
    if a.save_steps:
        final_stem, steps_dir = reserve_steps_dir(out_dir, final_stem)
        state['steps_dir'] = steps_dir
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), 'little')
    total = a.octaves * a.iterations
    events.emit(
        'start',
        source=shown,
        layer=a.layer,
        width=W,
        height=H,
        octaves=a.octaves,
        iterations=a.iterations,
        steps_total=total,
        seed=seed,
        **({'guide': guide_shown} if guide_shown else {}),
    )
    t0 = time.monotonic()

    def save_step(octave, iteration, data):  # data (3,h,w) float32 BGR
        vis = dream.to_uint8(dream.deprocess(net.mean, data))  # (h,w,3) uint8
        p = save_png_new(vis, steps_dir, '%s-%d-%d' % (layer_stem, octave, iteration), compress_level=1)
        written.append(p)
        events.emit('saved', kind='step', path=p)

    progress = step_events(events, total, t0, after=save_step if steps_dir else None)

    result = dream.deepdream(
        net,
        img,
        iter_n=a.iterations,
        octave_n=a.octaves,
        octave_scale=a.octave_scale,
        end=objectives.plain_blob(objective) or objective,  # a blob name: the L2, as always
        step_size=a.step_size,
        jitter=a.jitter,
        rng=np.random.RandomState(seed),
        progress=progress,
        tile=tiling.resolve_tile(a.tile, H, W),
    )
    mine = os.path.basename(steps_dir)[: -len('-steps')] if steps_dir else None

    def taken(cand):
        return cand != mine and os.path.isdir(os.path.join(out_dir, cand + '-steps'))

    path = save_png_new(dream.to_uint8(result), out_dir, final_stem, reserved=taken)
    written.append(path)
    elapsed = round(time.monotonic() - t0, 2)
    events.emit('saved', kind='final', path=path)
    events.emit('done', path=path, elapsed=elapsed)
    return {'path': path, 'seed': seed, 'elapsed': elapsed}


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def watch_stdin(stdin, on_close):
    """Call on_close() once stdin reaches its end (a daemon thread; returns it).

    ddctl attaches the container's stdin (StdinOnce): when ddctl is gone, killed with -9
    included, the daemon closes it and the dream stops instead of dreaming on alone.
    """

    fd = stdin.fileno()  # os.read, not the buffered reader: its lock would block shutdown

    def watch():
        try:
            while os.read(fd, 4096):
                pass
        except (OSError, ValueError):
            pass
        on_close()

    t = threading.Thread(target=watch, name='stdin-watch', daemon=True)
    t.start()
    return t


def _stop_self():
    os.kill(os.getpid(), signal.SIGTERM)


def small_pages(env=None):
    """Stop numpy asking the kernel for 2 MB pages (madvise) for its arrays of 4 MB and more,
    unless NUMPY_MADVISE_HUGEPAGE says otherwise: measured on this project's machine, a
    whole default dream ran 5-7% faster without (mapping a 2 MB page on first touch cost
    more than 512 small ones: 256 MB in 0.41 s against 0.26 s). Only memory advice: the
    numbers are the same."""
    env = os.environ if env is None else env
    core = getattr(np, '_core', None) or getattr(np, 'core', None)  # numpy 2 / the image's 1.19
    setter = getattr(getattr(core, 'multiarray', None), '_set_madvise_hugepage', None)
    if setter is not None and 'NUMPY_MADVISE_HUGEPAGE' not in env:
        setter(False)


def main(argv=None, net_factory=None, stdout=None, stderr=None):
    """Run the engine's command line; returns the exit code."""
    small_pages()
    argv = sys.argv[1:] if argv is None else list(argv)
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    net_factory = net_factory or default_net_factory
    events = Events(_progress_mode_of(argv, stdout), stdout, stderr)
    written: list[str] = []
    state: dict[str, Any] = {}
    old: dict = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):  # docker stop sends SIGTERM
            old[sig] = signal.signal(sig, _raise_interrupt)
    try:
        try:
            a = parse_args(argv)
        except SystemExit as e:  # --help
            return e.code or 0
        if a.exit_with_stdin and old and sys.stdin is not None:
            watch_stdin(sys.stdin, _stop_self)
        if a.mode != 'dream':
            mod = importlib.import_module('engine.' + a.mode)
            return mod.run(a, Context(net_factory, events, written, state))
        return _run(a, net_factory, events, written, state)
    except Refused as e:
        events.emit('error', code=e.code, message=str(e))
        return 2
    except KeyboardInterrupt:
        Events._write(stderr, 'interrupted; kept %d file(s) already written' % len(written))
        return 130
    except Failure as e:
        events.emit('error', code='internal', message=str(e))
        return 1
    except MemoryError:
        events.emit(
            'error', code='internal', message='out of memory: make the picture smaller with --max-size'
        )
        return 1
    except Exception as e:
        traceback.print_exc(file=stderr)
        msg = ' '.join(('%s: %s' % (type(e).__name__, e)).split())
        events.emit('error', code='internal', message='internal error: %s' % msg)
        return 1
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if state.get('steps_dir'):
            try:
                os.rmdir(state['steps_dir'])  # only if no step was saved (failure, early stop)
            except OSError:
                pass
