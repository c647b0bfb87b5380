"""Is this file Caffe weights? A cheap check on the host, before a build or a container.

A .caffemodel is a binary protobuf `NetParameter` (caffe.proto): a sequence of top-level
fields, each a tag (field number, wire type) and a value. Its fields are few and known:
name = 1, layers = 2 (the V1 layers of old files such as bvlc_googlenet), input = 3,
input_dim = 4, force_backward = 5, state = 6, debug_info = 7, input_shape = 8 and layer =
100 (what Caffe 1.0 writes). Walking the top level reads only the tags and lengths and
seeks over each layer, so a 50 MB file costs a few hundred reads. A text file, a picture,
a prototxt, an archive or a truncated download fails within a few bytes or at its end.

Hand-written rather than with the protobuf package: the host has no caffe_pb2 to parse
with, and this needs only the wire format's varints, not the messages.
"""

import os
from typing import BinaryIO

from ddctl.errors import UsageError

VARINT, I64, LEN, I32 = 0, 1, 2, 5
FIELDS = {1: LEN, 2: LEN, 3: LEN, 4: (VARINT, LEN), 5: VARINT, 6: LEN, 7: VARINT, 8: LEN, 100: LEN}
LAYERS = (2, 100)


class NotWeights(ValueError):
    """Why the bytes are not a NetParameter, in a few words."""


def _varint(f: BinaryIO) -> int:
    shift = value = 0
    while True:
        b = f.read(1)
        if not b:
            raise EOFError
        value |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise NotWeights("a number of more than 64 bits")


def _text(f: BinaryIO) -> bool:
    """The file's first bytes read as text (a prototxt, notes): said, as the likeliest mix-up."""
    f.seek(0)
    head = f.read(512).decode("utf-8", "ignore")
    return bool(head) and all(c.isprintable() or c.isspace() for c in head)


def walk(path: str) -> int:
    """The number of layers of the NetParameter in `path`; NotWeights when it is none."""
    size = os.path.getsize(path)
    if size == 0:
        raise NotWeights("it is empty")
    layers = 0
    with open(path, "rb") as f:
        while f.tell() < size:
            at = f.tell()
            try:
                tag = _varint(f)
            except EOFError:
                raise NotWeights(f"it ends inside a field at byte {at}: truncated?")
            number, wire = tag >> 3, tag & 7
            expected = FIELDS.get(number)
            if expected is None or wire not in (expected if isinstance(expected, tuple) else (expected,)):
                if at == 0:
                    raise NotWeights("it does not start like one" + (" (it is text)" if _text(f) else ""))
                raise NotWeights(f"byte {at} is not a field of a Caffe network")
            try:
                value = _varint(f) if wire == VARINT else None
                if wire == LEN:
                    value = _varint(f)
                    if f.tell() + value > size:
                        raise NotWeights(
                            f"a field at byte {at} needs {value} bytes but the file ends after "
                            f"{size - f.tell()}: truncated?"
                        )
                    f.seek(value, os.SEEK_CUR)
            except EOFError:
                raise NotWeights(f"it ends inside a field at byte {at}: truncated?")
            layers += number in LAYERS
    if not layers:
        raise NotWeights("it holds no layers")
    return layers


def check_weights_file(path: str, shown: str) -> None:
    """UsageError (one line) unless `path` reads as Caffe weights; `shown` names it."""
    try:
        walk(path)
    except NotWeights as exc:
        raise UsageError(
            f"{shown} is not a Caffe model (.caffemodel): {exc}. Give weights made for "
            "models/bvlc_googlenet/deploy.prototxt, or --weights download / untrained."
        )
    except OSError as exc:
        raise UsageError(f"Cannot read the weights file {shown}: {exc.strerror}.")
