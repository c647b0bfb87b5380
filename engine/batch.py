"""Batch mode (`python3 -m engine --batch -- SOURCE [LAYER] ...`): many pictures, one net.

SOURCE is a folder (every picture in it, by name; earlier results, *-i<N>-o<M>.png, are not
inputs) or a list file, one picture a line: a file (relative to --output-dir) or an http(s)
URL, or a JSON object {"source": ..., "name": STEM, "shown": TEXT} (ddctl writes these:
`shown` is what events and the manifest call the picture). Blank lines and #-lines are
skipped.

Each picture is dreamed with the same options, as a run of its own would be (the same
start/step/saved/done events, the same file names), between two `item` events:

  {"event": "batch", "total": N}
  {"event": "item", "index": i, "total": N, "source": ..., "status": "start"}
  ... start, step, saved, done ...
  {"event": "item", "index": i, "total": N, "source": ..., "status": "done"|"failed"|"skipped",
   "output": "name.png" (relative to the output folder), "record": {manifest line}}
  {"event": "batch_done", "done": d, "failed": f, "skipped": s, "elapsed": secs,
   "failures": [{"source": ..., "error": ...}]}

A picture that cannot be dreamed (not a picture, too small for the octaves, out of memory)
is reported and the next one starts. A picture whose final name (README: Files) already
exists is skipped unless --force (which writes a new one beside it, never over it).
Every dreamed or failed picture appends one line to manifest.jsonl in the output folder as
soon as it ends: {source, output, options, seed, seconds, status, error?}.
Exit code 0 when no picture failed, 3 otherwise.
"""

import copy
import json
import os
import re
import time
import traceback
import urllib.parse

from engine import cli

MANIFEST = 'manifest.jsonl'
PICTURE_EXTENSIONS = {'.jpg', '.jpeg', '.png', '.gif', '.bmp', '.tif', '.tiff', '.webp', '.jfif'}
RESULT_NAME = re.compile(r'-i\d+-o\d+(-\d+)?\.png$')  # a final picture of an earlier run
EXIT_SOME_FAILED = 3


def redact(source):
    """A source fit to print and store: no user:password, no query values (signed URLs)."""
    if not re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*://', source):
        return source
    u = urllib.parse.urlsplit(source)
    netloc = u.hostname or ''
    if u.port:
        netloc += ':%d' % u.port
    query = '&'.join(p.split('=', 1)[0] + '=…' for p in u.query.split('&') if p) if u.query else ''
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path, query, ''))


def _item(source, name=None, shown=None):
    return {'source': source, 'name': name, 'shown': shown or redact(source)}


def read_items(source, out_dir):
    """SOURCE of --batch -> [{'source', 'name', 'shown'}]; Refused when there is nothing."""
    path = os.path.normpath(os.path.join(out_dir, source))
    if os.path.isdir(path):
        names = sorted(
            n
            for n in os.listdir(path)
            if not n.startswith('.')
            and os.path.splitext(n)[1].lower() in PICTURE_EXTENSIONS
            and not RESULT_NAME.search(n)
            and os.path.isfile(os.path.join(path, n))
        )
        items = [_item(os.path.join(path, n), shown=n) for n in names]
        what = 'the folder %s' % source
    elif os.path.isfile(path):
        items = []
        try:
            with open(path, encoding='utf-8') as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise cli.Refused('cannot read the list %s: %s' % (source, e))
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            if line.startswith('{'):
                try:
                    obj = json.loads(line)
                    items.append(_item(str(obj['source']), obj.get('name'), obj.get('shown')))
                except (ValueError, KeyError, TypeError):
                    raise cli.Refused('line %d of %s is not a {"source": ...} object' % (n, source))
            else:
                items.append(_item(line))
        what = 'the list %s' % source
    else:
        raise cli.Refused('--batch needs a folder or a list file; %s is neither' % source)
    if not items:
        raise cli.Refused('%s holds no pictures (%s)' % (what, ', '.join(sorted(PICTURE_EXTENSIONS))))
    return items


def default_stem(source):
    """The stem a picture's results are named from (as load_source names it)."""
    if re.match(r'^https?://', source, re.I):
        name = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(source).path))
    else:
        name = os.path.basename(source)
    return cli._safe_stem(os.path.splitext(name)[0])


def options_of(a):
    """The options every picture of the batch is dreamed with (the manifest's `options`)."""
    return {
        'layer': a.layer,
        'iterations': a.iterations,
        'octaves': a.octaves,
        'octave_scale': a.octave_scale,
        'step_size': a.step_size,
        'jitter': a.jitter,
        'max_size': a.max_size,
        'tile': a.tile,
        **({'guide': a.guide} if a.guide is not None else {}),
    }


def append_manifest(out_dir, record):
    """One JSON line, written and flushed to disk before the next picture starts."""
    with open(os.path.join(out_dir, MANIFEST), 'a', encoding='utf-8') as f:
        f.write(json.dumps(record, ensure_ascii=False) + '\n')
        f.flush()
        os.fsync(f.fileno())


def run(a, net, objective, items, events, written, state):
    """Dream every item; returns the exit code (0, or 3 when some failed)."""
    out_dir = a.output_dir
    total = len(items)
    options = options_of(a)
    t0 = time.monotonic()
    counts = {'done': 0, 'failed': 0, 'skipped': 0}
    failures = []
    events.emit('batch', total=total)
    for index, it in enumerate(items, 1):
        shown = it['shown']
        events.emit('item', index=index, total=total, source=shown, status='start')
        stem = cli._safe_stem(it['name']) if it['name'] else default_stem(it['source'])
        final = cli.final_stem_of(a, stem) + '.png'
        if not a.force and os.path.lexists(os.path.join(out_dir, final)):
            counts['skipped'] += 1
            events.emit('item', index=index, total=total, source=shown, status='skipped', output=final)
            continue
        t1 = time.monotonic()
        record = {'source': shown, 'output': None, 'options': options, 'seed': None}
        try:
            img, _, _ = cli.load_picture(it['source'], out_dir, a.max_size)
            one = copy.copy(a)
            one.name = stem
            res = cli.dream_picture(one, net, objective, img, shown, stem, events, written, state)
            record.update(
                output=os.path.relpath(res['path'], out_dir),
                seed=res['seed'],
                seconds=round(time.monotonic() - t1, 2),
                status='done',
            )
        except cli.Refused as e:
            record.update(seconds=round(time.monotonic() - t1, 2), status='failed', error=str(e), code=e.code)
        except MemoryError:
            record.update(
                seconds=round(time.monotonic() - t1, 2),
                status='failed',
                error='out of memory: use a smaller --max-size or --tile',
                code='internal',
            )
        except Exception as e:  # one picture's bug must not cost the others
            traceback.print_exc(file=events.err)
            msg = ' '.join(('%s: %s' % (type(e).__name__, e)).split())
            record.update(
                seconds=round(time.monotonic() - t1, 2), status='failed', error='internal error: ' + msg,
                code='internal',
            )  # fmt: skip
        finally:
            _drop_empty_steps_dir(state)
        counts[record['status']] += 1
        if record['status'] == 'failed':
            failures.append({'source': shown, 'error': record['error']})
        append_manifest(out_dir, record)
        events.emit(
            'item',
            index=index,
            total=total,
            source=shown,
            status=record['status'],
            output=record['output'],
            record=record,
        )
    events.emit('batch_done', elapsed=round(time.monotonic() - t0, 2), failures=failures, **counts)
    return EXIT_SOME_FAILED if counts['failed'] else 0


def _drop_empty_steps_dir(state):
    d = state.pop('steps_dir', None)
    if d:
        try:
            os.rmdir(d)  # only if no step was saved
        except OSError:
            pass
