"""Every kind of picture people feed DeepDream becomes upright RGB and dreams; the rest is refused."""

import io
import json
import os
import struct
import sys
import threading
import zlib

import numpy as np
import pytest
from PIL import Image, features

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_engine_fakenet import FakeNet

from engine import cli
from engine.images import PictureError, load_rgb, save_png_new

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


# --- generators: each writes one kind of picture, returns (file name, expected (H,W)) -----


def make_rgba(d):
    im = Image.new('RGBA', (40, 30), RED + (255,))
    im.paste((0, 0, 0, 0), (0, 0, 20, 30))  # left half fully transparent
    im.save(os.path.join(d, 'rgba.png'))
    return 'rgba.png', (30, 40)


def make_la(d):
    im = Image.new('LA', (40, 30), (0, 255))
    im.paste((0, 0), (0, 0, 20, 30))
    im.save(os.path.join(d, 'la.png'))
    return 'la.png', (30, 40)


def make_palette(d):
    im = Image.new('P', (40, 30), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(0, (0, 0, 20, 30))
    im.save(os.path.join(d, 'pal.png'), transparency=0)  # index 0 transparent
    return 'pal.png', (30, 40)


def make_grey(d):
    Image.new('L', (40, 30), 77).save(os.path.join(d, 'grey.png'))
    return 'grey.png', (30, 40)


def make_grey16(d):
    a = np.full((30, 40), 65535, np.uint16)
    a[:, :20] = 32896  # 32896/257 = 128
    Image.fromarray(a).save(os.path.join(d, 'grey16.png'))
    return 'grey16.png', (30, 40)


def make_cmyk(d):
    Image.new('CMYK', (40, 30), (0, 255, 255, 0)).save(os.path.join(d, 'cmyk.jpg'), quality=95)
    return 'cmyk.jpg', (30, 40)


def make_exif_rotated(d):
    im = Image.new('RGB', (40, 20), RED)  # stored wide: left red, right blue
    im.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    im.save(os.path.join(d, 'exif.jpg'), exif=exif.tobytes(), quality=95)
    return 'exif.jpg', (40, 20)  # shown tall


def make_animated(d):
    frames = [Image.new('RGB', (40, 30), c) for c in (RED, BLUE, WHITE)]
    frames[0].save(os.path.join(d, 'anim.gif'), save_all=True, append_images=frames[1:], duration=100, loop=0)
    return 'anim.gif', (30, 40)


def make_webp(d):
    Image.new('RGB', (40, 30), RED).save(os.path.join(d, 'pic.webp'), quality=95)
    return 'pic.webp', (30, 40)


KINDS = [
    make_rgba,
    make_la,
    make_palette,
    make_grey,
    make_grey16,
    make_cmyk,
    make_exif_rotated,
    make_animated,
    make_webp,
]


def _skip_unsupported(kind):
    if kind is make_webp and not features.check('webp'):
        pytest.skip('this Pillow has no WebP support')


def run(argv, factory=None):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, net_factory=factory or (lambda p, w: FakeNet()), stdout=out, stderr=err)
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


@pytest.mark.parametrize('kind', KINDS, ids=lambda k: k.__name__[5:])
def test_every_picture_kind_dreams_upright_at_its_size(tmp_path, kind):
    _skip_unsupported(kind)
    name, (h, w) = kind(str(tmp_path))
    code, events, err = run([name, 'conv2', '2', '2', '--output-dir', str(tmp_path), '--seed', '1'])
    assert code == 0, (events, err)
    assert events[0]['event'] == 'start' and (events[0]['height'], events[0]['width']) == (h, w)
    final = events[-1]['path']
    assert os.path.dirname(final) == str(tmp_path)
    with Image.open(final) as im:
        assert im.format == 'PNG' and im.mode == 'RGB' and im.size == (w, h)


def test_transparent_parts_become_white_opaque_parts_keep_their_colour(tmp_path):
    d = str(tmp_path)
    for kind, opaque in [(make_rgba, RED), (make_la, (0, 0, 0)), (make_palette, RED)]:
        name, _ = kind(d)
        a = load_rgb(os.path.join(d, name))
        assert a.dtype == np.uint8 and a.shape == (30, 40, 3)
        assert tuple(a[5, 5]) == WHITE, name
        assert tuple(a[5, 35]) == opaque, name


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    name, _ = make_grey16(str(tmp_path))
    a = load_rgb(os.path.join(str(tmp_path), name))
    assert tuple(a[0, 0]) == (128, 128, 128)
    assert tuple(a[0, 39]) == (255, 255, 255)


def test_grey_and_cmyk_become_the_right_rgb(tmp_path):
    d = str(tmp_path)
    assert tuple(load_rgb(os.path.join(d, make_grey(d)[0]))[3, 3]) == (77, 77, 77)
    r, g, b = load_rgb(os.path.join(d, make_cmyk(d)[0]))[15, 20].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_exif_rotated_photo_is_shown_upright(tmp_path):
    a = load_rgb(os.path.join(str(tmp_path), make_exif_rotated(str(tmp_path))[0]))
    assert a.shape == (40, 20, 3)
    top, bottom = a[5, 10].astype(int), a[35, 10].astype(int)
    assert top[0] > 200 and top[2] < 60  # the stored left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_animation_gives_its_first_frame(tmp_path):
    a = load_rgb(os.path.join(str(tmp_path), make_animated(str(tmp_path))[0]))
    assert tuple(a[10, 10]) == RED


def test_max_size_downscales_the_long_side(tmp_path):
    p = str(tmp_path / 'big.png')
    Image.new('RGB', (200, 100), RED).save(p)
    assert load_rgb(p, max_size=50).shape == (25, 50, 3)
    assert load_rgb(p, max_size=500).shape == (100, 200, 3)  # never upscales
    code, events, _ = run(['big.png', 'conv1', '1', '1', '--max-size', '64', '--output-dir', str(tmp_path)])
    assert code == 0 and (events[0]['width'], events[0]['height']) == (64, 32)
    with Image.open(events[-1]['path']) as im:
        assert im.size == (64, 32)


# --- refusals ------------------------------------------------------------------------------


def _png_header_only(w, h):
    def chunk(t, data):
        return struct.pack('>I', len(data)) + t + data + struct.pack('>I', zlib.crc32(t + data))

    return (
        b'\x89PNG\r\n\x1a\n'
        + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0))
        + chunk(b'IDAT', zlib.compress(b'\0' * 100))
        + chunk(b'IEND', b'')
    )


def _truncated_png(d):
    p = os.path.join(d, 'whole.png')
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64, 3)).astype(np.uint8)).save(p)
    return open(p, 'rb').read()[:600]


def _truncated_jpeg(d):
    p = os.path.join(d, 'whole.jpg')
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64, 3)).astype(np.uint8)).save(p)
    return open(p, 'rb').read()[:700]


REFUSED = {
    'html': (lambda d: b'<!DOCTYPE html><html><body>404 Not Found</body></html>', 'web page'),
    'text': (lambda d: b'hello, this is not a picture\n', 'not a picture'),
    'empty': (lambda d: b'', 'empty'),
    'binary': (lambda d: bytes(range(256)) * 4, 'not a picture'),
    'truncated_png': (_truncated_png, 'truncated'),
    'truncated_jpeg': (_truncated_jpeg, 'truncated'),
    'bomb': (lambda d: _png_header_only(30000, 30000), 'decompression bomb'),
    'bomb_warning_range': (lambda d: _png_header_only(10000, 10000), 'decompression bomb'),
}


@pytest.mark.parametrize('what', sorted(REFUSED))
def test_non_pictures_are_refused_with_one_line_and_exit_2(tmp_path, what):
    make, words = REFUSED[what]
    (tmp_path / 'input.jpg').write_bytes(make(str(tmp_path)))
    with pytest.raises(PictureError) as e:
        load_rgb(str(tmp_path / 'input.jpg'))
    assert words in str(e.value) and '\n' not in str(e.value)
    code, events, err = run(['input.jpg', '--output-dir', str(tmp_path)])
    assert code == 2 and err == ''
    assert events == [{'event': 'error', 'code': 'bad_input', 'message': str(e.value)}]
    assert sorted(os.listdir(str(tmp_path))) == sorted(
        ['input.jpg']
        + (['whole.png'] if what == 'truncated_png' else ['whole.jpg'] if what == 'truncated_jpeg' else [])
    )  # nothing written


def test_missing_file_and_folder_are_refused(tmp_path):
    code, events, _ = run(['nope.jpg', '--output-dir', str(tmp_path)])
    assert code == 2 and 'no such file' in events[0]['message']
    assert str(tmp_path / 'nope.jpg') in events[0]['message']  # resolved against --output-dir
    (tmp_path / 'sub').mkdir()
    code, events, _ = run(['sub', '--output-dir', str(tmp_path)])
    assert code == 2 and 'folder' in events[0]['message']


# --- saving --------------------------------------------------------------------------------


def test_save_never_overwrites_and_numbers_from_2(tmp_path):
    a = np.zeros((4, 5, 3), np.uint8)
    (tmp_path / 'x.png').write_bytes(b'precious')
    p2 = save_png_new(a, str(tmp_path), 'x')
    p3 = save_png_new(a, str(tmp_path), 'x')
    assert [os.path.basename(p) for p in (p2, p3)] == ['x-2.png', 'x-3.png']
    assert (tmp_path / 'x.png').read_bytes() == b'precious'
    with Image.open(p3) as im:
        assert im.size == (5, 4)


def test_concurrent_saves_get_distinct_names(tmp_path):
    a = np.zeros((8, 8, 3), np.uint8)
    paths = []
    threads = [
        threading.Thread(target=lambda: paths.append(save_png_new(a, str(tmp_path), 'r'))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(paths)) == 8 and len(os.listdir(str(tmp_path))) == 8
