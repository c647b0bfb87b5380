"""Pictures in and out: any picture Pillow reads -> RGB uint8; PNGs saved without overwriting.

The 2015 images crashed on RGBA and greyscale inputs ("could not broadcast (4,H,W) (3,1,1)")
and saved error pages as img.jpg; here every picture kind becomes (H,W,3) RGB uint8 and
anything else is refused with one line (PictureError).
Works with Pillow 8.1 (Debian bullseye) and newer.
"""

import io
import os
import struct
import warnings
from typing import IO

import numpy as np
from PIL import (
    Image,
    ImageOps,
    UnidentifiedImageError,  # Pillow 7+ (the image has 8.1)
)

# Pillow 9.1 moved the filters to Image.Resampling (the image's 8.1 has only Image.LANCZOS)
_LANCZOS = getattr(Image, 'Resampling', Image).LANCZOS
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89478485  # Pillow's default bomb threshold (~89.5 MP)
WHITE = (255, 255, 255)


class PictureError(Exception):
    """A refused input; str() is one line that says what to do."""


def _sniff(head):
    """A guess at what a non-picture is, from its first bytes."""
    h = head.lstrip()[:256].lower()
    if h.startswith((b'<!doctype html', b'<html', b'<head', b'<body')) or b'<html' in h:
        return 'a web page (HTML)'
    if h.startswith((b'<?xml', b'<svg')):
        return 'XML/SVG (vector pictures are not supported; convert it to PNG)'
    if h.startswith((b'{', b'[')):
        return 'JSON text'
    if not head:
        return 'an empty file'
    try:
        head.decode('utf-8')
        return 'text'
    except UnicodeDecodeError:
        return None


def _to_8bit(a):
    """(H,W) integer or float array of a greyscale picture -> uint8, scaled, not clipped."""
    is_float = a.dtype.kind == 'f'
    a = a.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if is_float and lo >= 0 and hi <= 1.0 and hi > 0:
        a = a * 255.0  # float pictures in [0, 1]
    elif lo >= 0 and hi <= 255:
        pass  # already 8-bit values
    elif lo >= 0 and hi <= 65535:
        a = a / 257.0  # 16-bit: 65535 -> 255
    else:
        a = (a - lo) * (255.0 / (hi - lo))  # anything else: stretch its range
    return np.uint8(np.clip(np.round(a), 0, 255))


def _upright(im):
    """Apply the EXIF orientation (a broken EXIF block is ignored, not fatal)."""
    try:
        return ImageOps.exif_transpose(im) or im
    except Exception:
        return im


def to_rgb(im, fmt=None):
    """Any Pillow image (first frame, already upright) -> RGB Pillow image.
    fmt: the file's format ('PNG', ...). Transparency is composited on white."""
    mode = im.mode
    if mode.startswith('I;16') or (mode == 'I' and fmt == 'PNG'):
        # 16-bit greyscale (PNG opens as 'I' or 'I;16' depending on Pillow): 65535 -> 255
        a = np.asarray(im).astype(np.float64)
        return Image.fromarray(np.uint8(np.clip(np.round(a / 257.0), 0, 255)), 'L').convert('RGB')
    if mode in ('I', 'F'):
        return Image.fromarray(_to_8bit(np.asarray(im)), 'L').convert('RGB')
    has_alpha = mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La') or 'transparency' in im.info
    if has_alpha:
        rgba = im.convert('RGBA')
        bg = Image.new('RGBA', im.size, WHITE + (255,))
        return Image.alpha_composite(bg, rgba).convert('RGB')
    if mode == 'RGB':
        return im
    return im.convert('RGB')  # P, L, 1, CMYK, YCbCr, LAB, HSV


def load_rgb(source, max_size=None):
    """source: a path or bytes -> (H,W,3) uint8 RGB, EXIF orientation applied, first frame of
    an animation, downscaled (long side, Lanczos) to max_size if given. Raises PictureError."""
    fp: IO[bytes]
    if isinstance(source, (bytes, bytearray)):
        name, fp = 'the download', io.BytesIO(source)
        head = bytes(source[:512])
    else:
        name = str(source)
        try:
            fp = open(name, 'rb')
        except FileNotFoundError:
            raise PictureError('no such file: %s' % name)
        except IsADirectoryError:
            raise PictureError('%s is a folder, not a picture' % name)
        except PermissionError:
            raise PictureError('cannot read %s: permission denied' % name)
        head = fp.read(512)
        fp.seek(0)
    try:
        with fp, warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            im = Image.open(fp)
            if im.width * im.height > MAX_PIXELS:
                raise Image.DecompressionBombError('too many pixels')
            im.seek(0)  # animated: first frame
            im.load()
            rgb = to_rgb(_upright(im), im.format)
            rgb.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PictureError(
            '%s has more than %d megapixels (possibly a decompression bomb): '
            'make it smaller first' % (name, MAX_PIXELS // 1000000)
        )
    except UnidentifiedImageError:
        what = _sniff(head)
        raise PictureError(
            '%s is not a picture%s: give a PNG, JPEG, GIF, WebP, BMP or TIFF'
            % (name, ' (it is %s)' % what if what else '')
        )
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error) as e:
        raise PictureError(
            '%s is a damaged or truncated picture (%s): give a complete file'
            % (name, str(e).splitlines()[0] if str(e) else type(e).__name__)
        )
    if max_size and max(rgb.size) > max_size:
        s = max_size / float(max(rgb.size))
        size = (max(1, int(round(rgb.width * s))), max(1, int(round(rgb.height * s))))
        rgb = rgb.resize(size, _LANCZOS)
    return np.asarray(rgb, dtype=np.uint8).copy()  # (H,W,3)


# -----------------------------------------------------------------------------
# saving


def _open_exclusive(path):
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), 'wb')


def write_png(fp, rgb, compress_level=6):
    """rgb (H,W,3) uint8 -> PNG bytes into the open file fp."""
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), 'RGB').save(
        fp, format='PNG', compress_level=compress_level
    )


def save_png_new(rgb, directory, stem, reserved=None, compress_level=6):
    """Save rgb (H,W,3) uint8 as directory/stem.png, or stem-2.png, stem-3.png, ... if taken.
    Never overwrites: each name is created with O_EXCL, so two runs racing for the same name
    both succeed with different names. `reserved(candidate_stem) -> bool` can veto a name.
    Returns the path written. A partly written file is removed on any failure."""
    n = 1
    while True:
        cand = stem if n == 1 else '%s-%d' % (stem, n)
        n += 1
        if reserved is not None and reserved(cand):
            continue
        path = os.path.join(directory, cand + '.png')
        try:
            fp = _open_exclusive(path)
        except FileExistsError:
            continue
        except IsADirectoryError:
            continue
        try:
            with fp:
                write_png(fp, rgb, compress_level)
        except BaseException:
            try:
                os.unlink(path)
            except OSError:
                pass
            raise
        return path
