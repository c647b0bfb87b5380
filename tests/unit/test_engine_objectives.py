"""engine/objectives.py: the LAYER grammar, each objective's gradient, guided dreaming
against the notebook's objective_guide, and the engine's command line with them."""

import io
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import notebook_reference as nb  # noqa: E402
from test_engine_fakenet import FakeNet  # noqa: E402

from engine import cli, dream, objectives  # noqa: E402

# -----------------------------------------------------------------------------
# grammar


def test_a_plain_blob_name_is_its_l2():
    o = objectives.parse('inception_4c/output')
    assert o.layers == ['inception_4c/output'] and objectives.plain_blob(o) == 'inception_4c/output'
    assert o.spec == 'inception_4c/output'


def test_channels_weights_and_several_blobs():
    o = objectives.parse('inception_4c/output:112,97*2+inception_3b/output*0.5+inception_4c/output:3')
    assert o.layers == ['inception_4c/output', 'inception_3b/output']
    assert [(t.blob, t.channels, t.weight) for t in o.terms] == [
        ('inception_4c/output', (97, 112), 2.0),
        ('inception_3b/output', None, 0.5),
        ('inception_4c/output', (3,), 1.0),
    ]
    assert objectives.plain_blob(o) is None
    assert o.spec == 'inception_4c/output:97,112*2+inception_3b/output*0.5+inception_4c/output:3'


@pytest.mark.parametrize(
    'spec, words',
    [
        ('', 'empty'),
        ('a:', 'channels of a'),
        ('a:x', 'channels of a'),
        ('a:-1', 'channels of a'),
        ('a*0', 'weight of a'),
        ('a*-1', 'weight of a'),
        ('a*x', 'weight of a'),
        ('a*nan', 'weight of a'),
        ('a+', "cannot read ''"),
        ('a**2', 'cannot read'),
        ('a:1*2*3', 'cannot read'),
    ],
)
def test_bad_grammar_is_one_line_that_shows_the_form(spec, words):
    with pytest.raises(objectives.ObjectiveError) as e:
        objectives.parse(spec)
    assert words in str(e.value) and '\n' not in str(e.value)


def test_a_known_name_with_grammar_characters_is_one_blob():
    o = objectives.parse('odd:name*1', known=['odd:name*1'])
    assert o.layers == ['odd:name*1'] and objectives.plain_blob(o) == 'odd:name*1'


def test_check_refuses_unknown_blobs_and_channels_out_of_range():
    layers = FakeNet().layers()
    objectives.check(objectives.parse('conv1:7+conv3:0,15'), layers)
    with pytest.raises(objectives.ObjectiveError) as e:
        objectives.check(objectives.parse('conv1+conv9'), layers)
    assert e.value.code == 'unknown_layer' and "'conv9'" in str(e.value)
    with pytest.raises(objectives.ObjectiveError) as e:
        objectives.check(objectives.parse('conv1:8'), layers)  # conv1 has 8 channels: 0..7
    assert e.value.code == 'bad_channel'
    assert str(e.value) == 'channel 8 is out of range: conv1 has 8 channels (0 to 7)'


def test_file_name_stems():
    assert objectives.stem('inception_4c/output') == 'inception_4c-output'
    assert objectives.stem('inception_4c/output:97,112') == 'inception_4c-output_97_112'
    assert objectives.stem('a/b*1.0+c/d*0.5') == 'a-b_1.0+c-d_0.5'


# -----------------------------------------------------------------------------
# gradients on the fake net


def _x(seed=3, h=24, w=20):
    return (np.random.RandomState(seed).randn(3, h, w) * 40).astype(np.float32)


def test_a_plain_objective_is_bit_for_bit_the_blob_name():
    net, x = FakeNet(), _x()
    for end in FakeNet.NAMES:
        assert np.array_equal(net.input_gradient(x, end), net.input_gradient(x, objectives.parse(end)))


def test_channel_objective_is_the_gradient_of_those_channels_half_squared_norm():
    net, x = FakeNet(), _x().astype(np.float64)
    chans = [2, 9]
    g = net.input_gradient(x.astype(np.float32), objectives.parse('conv2:2,9')).astype(np.float64)

    def f(v):
        feats = net.features(v.astype(np.float32), 'conv2').astype(np.float64)
        return 0.5 * float((feats[chans] ** 2).sum())

    for idx in [(0, 0, 0), (1, 5, 3), (2, 7, 9), (0, 11, 8)]:
        e = np.zeros_like(x)
        e[idx] = 0.5
        num = f(x + e) - f(x - e)
        assert abs(num - g[idx]) <= 0.02 * max(1.0, abs(g[idx])), (idx, num, g[idx])
    assert np.abs(g).sum() > 0
    # and it is not the whole layer's gradient
    assert not np.allclose(g, net.input_gradient(x.astype(np.float32), 'conv2'))


def test_several_blobs_sum_their_weighted_gradients():
    net, x = FakeNet(), _x()
    mixed = net.input_gradient(x, objectives.parse('conv3*1.0+conv1*0.5+conv2:1,4*2'))
    parts = (
        net.input_gradient(x, 'conv3')
        + 0.5 * net.input_gradient(x, 'conv1')
        + 2 * net.input_gradient(x, objectives.parse('conv2:1,4'))
    )
    assert np.allclose(mixed, parts, rtol=1e-4, atol=1e-4 * np.abs(parts).max())


# -----------------------------------------------------------------------------
# guided dreaming, bit for bit against the notebook's objective_guide


def picture(h, w, seed=0):
    rng = np.random.RandomState(seed)
    img = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
    img[: h // 2] //= 2
    return img


@pytest.mark.parametrize('end', ['conv1', 'conv2', 'conv3'])
@pytest.mark.parametrize('jitter', [0, 6])
def test_guided_dream_equals_the_notebook_bit_for_bit(end, jitter):
    img, guide = picture(61, 84), picture(30, 26, seed=5)
    ref_net = FakeNet()
    nb.set_guide(ref_net, np.float32(guide), end)  # the notebook: np.float32(PIL.Image.open(...))
    np.random.seed(11)
    ref = nb.deepdream(
        ref_net, img, iter_n=3, octave_n=3, end=end, jitter=jitter, objective=nb.objective_guide
    )

    net = FakeNet()
    objective = objectives.guide(net, guide, end)
    assert np.array_equal(objective.guide_features, nb.guide_features)
    ours = dream.deepdream(
        net, img, iter_n=3, octave_n=3, end=objective, jitter=jitter, rng=np.random.RandomState(11)
    )
    assert np.array_equal(ours, ref)  # every float, not only the pixels
    # it did something, and something else than the L2 dream
    l2 = dream.deepdream(
        FakeNet(), img, iter_n=3, octave_n=3, end=end, jitter=jitter, rng=np.random.RandomState(11)
    )
    assert np.abs(ours - img).mean() > 1 and not np.allclose(ours, l2)


def test_l2_dream_still_equals_the_notebook_bit_for_bit():
    img = picture(45, 52)
    np.random.seed(4)
    ref = nb.deepdream(FakeNet(), img, iter_n=2, octave_n=3, end='conv2', jitter=5)
    ours = dream.deepdream(
        FakeNet(), img, iter_n=2, octave_n=3, end='conv2', jitter=5, rng=np.random.RandomState(4)
    )
    assert np.array_equal(ours, ref)


# -----------------------------------------------------------------------------
# the engine's command line


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, net_factory=lambda p, w: FakeNet(), stdout=out, stderr=err)
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


@pytest.fixture
def pics(tmp_path):
    Image.fromarray(picture(48, 64)).save(str(tmp_path / 'cat.png'))
    Image.fromarray(picture(40, 40, seed=9)).save(str(tmp_path / 'flowers.png'))
    return tmp_path


@pytest.mark.parametrize(
    'layer, code, words',
    [
        ('conv2:12', 'bad_channel', 'channel 12 is out of range: conv2 has 12 channels (0 to 11)'),
        ('conv2:1,x', 'bad_objective', 'channels of conv2 must be whole numbers'),
        ('conv2*1+nope*2', 'unknown_layer', "unknown layer 'nope'"),
        ('conv2**2', 'bad_objective', 'cannot read'),
    ],
)
def test_the_engine_refuses_bad_objectives_in_one_line_exit_2(pics, layer, code, words):
    c, ev, err = run(['--output-dir', str(pics), '--', 'cat.png', layer])
    assert c == 2 and err == '' and len(ev) == 1
    assert ev[0]['code'] == code and words in ev[0]['message']
    assert sorted(os.listdir(str(pics))) == ['cat.png', 'flowers.png']


def test_the_engine_dreams_a_channel_and_a_mix_with_their_names(pics):
    c, ev, _ = run(['--output-dir', str(pics), '--seed', '1', '--', 'cat.png', 'conv2:3,5', '2', '2'])
    assert c == 0 and ev[0]['layer'] == 'conv2:3,5'
    assert ev[-1]['path'] == str(pics / 'cat-conv2_3_5-i2-o2.png')
    c, ev, _ = run(['--output-dir', str(pics), '--', 'cat.png', 'conv2*1+conv1*0.5', '2', '2'])
    assert c == 0 and ev[-1]['path'] == str(pics / 'cat-conv2_1+conv1_0.5-i2-o2.png')


def test_the_engine_guided_dream_is_the_notebook_s(pics):
    c, ev, _ = run(
        ['--output-dir', str(pics), '--seed', '3', '--jitter', '4', '--guide', 'flowers.png', '--']
        + ['cat.png', 'conv2', '2', '2']
    )
    assert c == 0 and ev[0]['guide'] == 'flowers.png'
    path = ev[-1]['path']
    assert path == str(pics / 'cat-conv2-guided-i2-o2.png')
    net = FakeNet()
    with Image.open(str(pics / 'flowers.png')) as g:
        guide = np.asarray(g.convert('RGB'))
    nb.set_guide(net, np.float32(guide), 'conv2')
    with Image.open(str(pics / 'cat.png')) as im:
        img = np.asarray(im.convert('RGB'))
    np.random.seed(3)
    ref = nb.deepdream(net, img, iter_n=2, octave_n=2, end='conv2', jitter=4, objective=nb.objective_guide)
    with Image.open(path) as out:
        assert np.array_equal(np.asarray(out), nb.to_uint8(ref))


def test_guide_refusals(pics):
    c, ev, _ = run(['--output-dir', str(pics), '--guide', 'flowers.png', '--', 'cat.png', 'conv2:1'])
    assert (
        c == 2 and ev[0]['code'] == 'bad_objective' and '--guide works on one whole layer' in ev[0]['message']
    )
    c, ev, _ = run(['--output-dir', str(pics), '--guide', 'nothing.png', '--', 'cat.png', 'conv2'])
    assert c == 2 and len(ev) == 1 and ev[0]['message'].startswith('guide: ')
    Image.fromarray(picture(5, 5)).save(str(pics / 'tiny.png'))
    c, ev, _ = run(['--output-dir', str(pics), '--guide', 'tiny.png', '--', 'cat.png', 'conv3'])
    assert c == 2 and 'needs at least 8 pixels' in ev[0]['message']


def test_mean_option(pics):
    seen = {}

    def factory(p, w):
        seen['net'] = FakeNet()
        return seen['net']

    out = io.StringIO()
    code = cli.main(
        ['--output-dir', str(pics), '--mean', '104,117,123', '--', 'cat.png', 'conv1', '1', '1'],
        net_factory=factory,
        stdout=out,
        stderr=io.StringIO(),
    )
    assert code == 0 and seen['net'].mean.tolist() == [104, 117, 123]
    c, ev, _ = run(['--output-dir', str(pics), '--mean', '104,117', '--', 'cat.png'])
    assert c == 2 and '--mean is three numbers' in ev[0]['message']
