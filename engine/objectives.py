"""What a dream amplifies: the objective whose gradient the Net sends back to the picture.

The algorithm (engine/dream.py) stays the notebook's; only the objective generalises. An
objective names the blobs it reads (`layers`) and, given their data after a forward pass,
writes their diffs (d objective / d blob) in place: `set_diffs(datas, diffs)`, each array
(1,C,H,W) float32, in the order of `layers`. The Net runs forward to those blobs, calls
set_diffs, runs backward and returns the picture's gradient.

The grammar of LAYER (README "Objectives"), one or more terms joined by '+':

    TERM := BLOB [':' CHANNEL (',' CHANNEL)*] ['*' WEIGHT]

    inception_4c/output                         L2 of the blob (the notebook's objective_L2)
    inception_4c/output:97                      L2 of channel 97 only
    inception_4c/output:97,112                  L2 of channels 97 and 112
    inception_4c/output*1.0+inception_3b/output*0.5
                                                weighted sum of the blobs' L2

The value maximised is sum over terms of WEIGHT * |chosen channels of BLOB|^2 / 2, so each
blob's diff is the weighted sum of its terms' data on their channels (and 0 elsewhere). A
plain blob name is diff = data exactly, bit for bit what the engine always did.

Guided (the notebook's objective_guide): the guide picture's features at one blob are
computed once; at every step each position's diff is the guide feature vector with the
largest dot product with that position's features.

Nothing here imports caffe.
"""

import difflib
import re

import numpy as np

_TERM = re.compile(
    r'^(?P<blob>[^:*+\s]+)'
    r'(?::(?P<channels>[^*+]*))?'
    r'(?:\*(?P<weight>[^*+]*))?$'
)


class ObjectiveError(ValueError):
    """A LAYER string that does not follow the grammar, or names what the net lacks."""

    def __init__(self, message, code='bad_objective'):
        ValueError.__init__(self, message)
        self.code = code


class Term:
    """One blob, optionally some of its channels, with a weight."""

    def __init__(self, blob, channels=None, weight=1.0):
        self.blob = blob
        self.channels = None if channels is None else tuple(channels)  # None: all
        self.weight = float(weight)

    @property
    def plain(self):
        return self.channels is None and self.weight == 1.0

    def add_diff(self, data, diff):
        """diff += weight * data on this term's channels; data, diff (1,C,H,W)."""
        if self.channels is None:
            diff += self.weight * data if self.weight != 1.0 else data
        else:
            ch = list(self.channels)
            diff[:, ch] += self.weight * data[:, ch] if self.weight != 1.0 else data[:, ch]

    def __str__(self):
        text = self.blob
        if self.channels is not None:
            text += ':' + ','.join(str(c) for c in self.channels)
        if self.weight != 1.0:
            text += '*%g' % self.weight
        return text


class Objective:
    """Weighted L2 of blobs (or of some of their channels): see the module's grammar."""

    guided = False

    def __init__(self, terms):
        self.terms = list(terms)
        self.layers: list[str] = []  # unique blobs, in the order first named
        for t in self.terms:
            if t.blob not in self.layers:
                self.layers.append(t.blob)
        self._by_blob = {name: [t for t in self.terms if t.blob == name] for name in self.layers}

    @property
    def spec(self):
        return '+'.join(str(t) for t in self.terms)

    def __str__(self):
        return self.spec

    def set_diffs(self, datas, diffs):
        """datas, diffs: [(1,C,H,W) float32] in the order of self.layers; diffs written in place."""
        for name, data, diff in zip(self.layers, datas, diffs):
            terms = self._by_blob[name]
            if len(terms) == 1 and terms[0].plain:
                np.copyto(diff, data)  # the notebook's objective_L2: dst.diff[:] = dst.data
                continue
            diff[...] = 0
            for t in terms:
                t.add_diff(data, diff)


class GuideObjective:
    """The notebook's objective_guide on one blob, against the guide's features there.

    guide_features (C,Hg,Wg) float32: the blob's data for the guide picture."""

    guided = True

    def __init__(self, blob, guide_features):
        self.layers = [blob]
        self.guide_features = np.asarray(guide_features, dtype=np.float32)

    @property
    def spec(self):
        return self.layers[0]

    def __str__(self):
        return '%s guided' % self.layers[0]

    def set_diffs(self, datas, diffs):
        # the notebook's objective_guide, line for line (x, y reshaped to ch x N)
        dst_data, dst_diff = datas[0], diffs[0]
        x = dst_data[0].copy()
        y = self.guide_features
        ch = x.shape[0]
        x = x.reshape(ch, -1)
        y = y.reshape(ch, -1)
        A = x.T.dot(y)  # (Nx,Ny) dot products of every position with every guide feature
        dst_diff[0].reshape(ch, -1)[:] = y[:, A.argmax(1)]  # the best-matching guide features


def parse(spec, known=()):
    """LAYER string -> Objective. `known`: blob names of the net; a name the net knows is
    always one blob (even if it holds grammar characters). Raises ObjectiveError."""
    if not isinstance(spec, str) or not spec.strip():
        raise ObjectiveError('LAYER is empty: give a layer name (see --list-layers)')
    if spec in known:
        return Objective([Term(spec)])
    terms = []
    for part in spec.split('+'):
        m = _TERM.match(part.strip())
        if not m:
            raise ObjectiveError(
                'cannot read %r as LAYER[:CHANNEL[,CHANNEL...]][*WEIGHT] joined by +: '
                'e.g. inception_4c/output:97 or inception_4c/output*1+inception_3b/output*0.5' % part
            )
        channels = None
        if m.group('channels') is not None:
            try:
                channels = [int(c) for c in m.group('channels').split(',')]
            except ValueError:
                channels = None
            if not channels or any(c < 0 for c in channels):
                raise ObjectiveError(
                    'channels of %s must be whole numbers from 0, separated by commas, got %r'
                    % (m.group('blob'), m.group('channels'))
                )
            channels = sorted(set(channels))
        weight = 1.0
        if m.group('weight') is not None:
            try:
                weight = float(m.group('weight'))
            except ValueError:
                weight = float('nan')
            if not np.isfinite(weight) or weight <= 0:
                raise ObjectiveError(
                    'the weight of %s must be a number greater than 0, got %r'
                    % (m.group('blob'), m.group('weight'))
                )
        terms.append(Term(m.group('blob'), channels, weight))
    return Objective(terms)


def as_objective(objective, known=()):
    """An objective, or a LAYER string (a plain blob name: the L2 of that blob)."""
    if isinstance(objective, str):
        return parse(objective, known)
    return objective


def check(objective, layers):
    """Refuse (ObjectiveError) blobs the net lacks and channels out of range.
    layers: [LayerInfo(name, channels, stride)] the user may dream on."""
    channels = {info.name: int(info.channels) for info in layers}
    for name in objective.layers:
        if name not in channels:
            hint = ' (LAYER comes before ITERATIONS)' if re.match(r'^[0-9.]+$', name) else ''
            close = difflib.get_close_matches(name, list(channels), n=1, cutoff=0.8)
            hint = hint or (' (did you mean %s?)' % close[0] if close else '')
            raise ObjectiveError(
                'unknown layer %r%s: choose one of %s' % (name, hint, ', '.join(channels)),
                code='unknown_layer',
            )
    for t in getattr(objective, 'terms', ()):
        bad = [c for c in t.channels or () if c >= channels[t.blob]]
        if bad:
            raise ObjectiveError(
                'channel %d is out of range: %s has %d channels (0 to %d)'
                % (bad[0], t.blob, channels[t.blob], channels[t.blob] - 1),
                code='bad_channel',
            )


def plain_blob(objective):
    """The blob name when `objective` is the plain L2 of one whole blob, else None."""
    terms = getattr(objective, 'terms', None)
    if terms is not None and len(terms) == 1 and terms[0].plain:
        return terms[0].blob
    return None


def stem(spec):
    """The LAYER string as a part of a file name: '/' -> '-', other separators -> '_'.
    A plain blob name gives the 2015 naming (inception_4c/output -> inception_4c-output)."""
    if re.match(r'^[\w./-]+$', spec):
        return spec.replace('/', '-')  # as the engine always named files
    text = re.sub(r'[^\w.+-]+', '_', spec.replace('/', '-')).strip('._-')[:80]
    return text or 'dream'


def guide(net, guide_img, blob):
    """The guided objective on `blob` for a guide picture (H,W,3) uint8 RGB: its features
    there, computed once, as the notebook's guide cell (preprocess, forward to the blob)."""
    from engine.dream import preprocess

    return GuideObjective(blob, net.features(preprocess(net.mean, guide_img), blob))
