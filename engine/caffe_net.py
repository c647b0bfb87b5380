"""The Net interface (engine/net.py) on Debian's Caffe: the only module that imports caffe.

What the notebook did: patch deploy.prototxt with `force_backward: true`, load a
caffe.Classifier, then per step `forward(end=end)`, `dst.diff[:] = dst.data`,
`backward(start=end)` and read `data.diff`. `force_backward` makes Caffe compute the
gradient of every weight as well (Net::Init sets param_propagate_down for all params when
force_backward is on, whatever lr_mult says), which DeepDream never reads.

What we do instead, with the same numbers (the same layers run the same code on the same
inputs, so the input gradient is the notebook's within float rounding):
  - one net per `end`, cut to the layers `end` depends on (the layer that produces the blob
    `end` and its ancestors; an in-place ReLU after it is not part of it, as with the
    notebook's forward(end=...));
  - every Convolution/InnerProduct param gets `lr_mult: 0`: no weight gradients;
  - no force_backward: the net gets a loss instead, so Caffe's own "does this layer feed the
    loss" analysis keeps backward only where it leads to the input. The loss is a Python
    layer whose backward writes the notebook's L2 objective (diff = data) into `end`;
  - the Input layer becomes a Python layer holding one dummy param (lr_mult 1), which makes
    Caffe propagate the gradient down to `data` (what force_backward did for the notebook);
  - `data` is reshaped only when the picture's size changes, and the Python wrappers of
    forward/backward (which build dicts of outputs) are skipped;
  - MAX Pooling and LRN run as Python layers whose loops are Caffe's, compiled by numba and
    spread over the cores (Caffe's CPU pooling and LRN are single-threaded: 28% and 15% of
    a step); same operations in the same order, so the numbers stay bitwise Caffe's.
Measured at 1024x576 to inception_4c/output (2 cores, OpenBLAS), one forward + backward:
the notebook's net 1.7-2.3 s, without weight gradients 1.33 s, + numba pooling 1.05 s,
+ numba LRN 0.85 s; the gradient is bitwise the notebook's. (Tried and dropped: pooling and LRN in plain numpy,
2.6 s; pooling split into 1xk and kx1 Caffe layers, 1.33 s.)
"""

import importlib.util
import os
import sys
import tempfile
import threading
import types
from typing import Any, Optional

os.environ.setdefault("GLOG_minloglevel", "2")  # Caffe's glog chatter off unless asked


class _DeferredCaffeIO(types.ModuleType):
    """Stands in sys.modules for caffe.io until something reads one of its names: then it
    loads the real caffe.io (skimage, matplotlib) and hands that over (see _defer_caffe_io)."""

    def __init__(self, spec, path):
        super().__init__("caffe.io")
        self.__spec__, self.__loader__, self.__file__, self.__package__ = spec, spec.loader, path, "caffe"
        self._io_spec = spec
        self._real: Optional[types.ModuleType] = None

    def __getattr__(self, name):  # called only for names the stand-in lacks
        if self._real is None:
            real = importlib.util.module_from_spec(self._io_spec)
            sys.modules["caffe.io"] = real  # as an import does while the module runs
            try:
                self._io_spec.loader.exec_module(real)
            except BaseException:
                sys.modules["caffe.io"] = self
                raise
            self._real = real
            package = sys.modules.get("caffe")
            if package is not None and package.__dict__.get("io") is self:
                setattr(package, "io", real)  # noqa: B010 - mypy knows no caffe.io
        return getattr(self._real, name)


def _defer_caffe_io():
    """Make `import caffe` skip loading caffe.io until something uses it. caffe/__init__ and
    pycaffe import caffe.io, which imports skimage and matplotlib (about 1 s, 4 s on a
    loaded machine); the engine never uses it. A stand-in module takes its place: importing
    it runs nothing, reading any of its names loads the real one, so caffe.Classifier & co.
    work as before. (importlib's LazyLoader does not do: Python's import statement reads the
    module's __spec__, which makes a lazy module load at once.)"""
    if "caffe" in sys.modules or "caffe.io" in sys.modules:
        return
    spec = importlib.util.find_spec("caffe")  # a top-level find_spec runs nothing
    if spec is None or not spec.submodule_search_locations:
        return
    path = os.path.join(list(spec.submodule_search_locations)[0], "io.py")
    io_spec = importlib.util.spec_from_file_location("caffe.io", path)
    if io_spec is None or io_spec.loader is None:
        return
    sys.modules["caffe.io"] = _DeferredCaffeIO(io_spec, path)


_defer_caffe_io()
import caffe  # noqa: E402
import numpy as np  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

from engine import objectives  # noqa: E402
from engine.net import LayerInfo  # noqa: E402

MEAN_BGR = np.array([104.0, 116.0, 122.0], dtype=np.float32)  # bvlc_googlenet, as the notebook
NATIVE_SIZE = 224  # bvlc_googlenet's training input side
_MODULE = __name__  # the Python layers below are found by Caffe under this module name


# -----------------------------------------------------------------------------
# prototxt handling (pure protobuf, no Caffe net needed)


def read_prototxt(path):
    """Parse a deploy prototxt into a caffe_pb2.NetParameter, with `input:` fields (old
    style) turned into an Input layer so the rest sees one form."""
    netp = caffe_pb2.NetParameter()
    with open(path) as f:
        text_format.Merge(f.read(), netp)
    if netp.input:
        layers = list(netp.layer)
        del netp.layer[:]
        for i, name in enumerate(netp.input):
            inp = netp.layer.add(name=name, type="Input", top=[name])
            if netp.input_shape:
                inp.input_param.shape.add().CopyFrom(netp.input_shape[i])
            else:
                inp.input_param.shape.add(dim=netp.input_dim[4 * i : 4 * i + 4])
        netp.layer.extend(layers)
        del netp.input[:]
        del netp.input_shape[:]
        del netp.input_dim[:]
    return netp


def _producer(netp, blob):
    """Index of the layer that first produces `blob` (not an in-place rewrite)."""
    for i, layer in enumerate(netp.layer):
        if blob in layer.top and blob not in layer.bottom:
            return i
    return None


def _ancestors(netp, end):
    """Indices, in net order, of the layers blob `end` depends on, its producer included."""
    last = _producer(netp, end)
    needed, keep = {end}, []
    for i in range(last, -1, -1):
        layer = netp.layer[i]
        if needed.intersection(layer.top):
            keep.append(i)
            needed.update(layer.bottom)
    return keep[::-1]


def _out_len(n, k, s, p, ceil_mode, dilation=1, pad_any=None):
    """Caffe's output length of a conv (floor) or pooling (ceil, clipped) window.
    pad_any: whether the layer has any padding (Caffe's clip rule looks at both axes)."""
    k = dilation * (k - 1) + 1
    if not ceil_mode:
        return (n + 2 * p - k) // s + 1
    out = int(np.ceil(float(n + 2 * p - k) / s)) + 1
    if (p if pad_any is None else pad_any) and (out - 1) * s >= n + p:
        out -= 1  # Caffe: the last window must start inside the picture (or its padding)
    return out


def _kernel(param):
    """(kh, kw), (sh, sw), (ph, pw) of a Convolution or Pooling param."""

    def pick(single, h, w, default):
        if param.HasField(h):
            return getattr(param, h), getattr(param, w)
        v = getattr(param, single)
        if isinstance(v, int):  # PoolingParameter: optional scalars
            return (v, v) if param.HasField(single) else (default, default)
        v = list(v) or [default]  # ConvolutionParameter: repeated
        return v[0], v[-1]

    return (
        pick("kernel_size", "kernel_h", "kernel_w", 1),
        pick("stride", "stride_h", "stride_w", 1),
        pick("pad", "pad_h", "pad_w", 0),
    )


def infer_shapes(netp, h, w):
    """{blob: (C, H, W)} for an input of h x w, by Caffe's rules, without running Caffe.
    Blobs that cannot exist at that size map to None (a window larger than its input)."""
    shapes: dict[str, Any] = {}  # blob -> (C,H,W), or None where it cannot be known
    for layer in netp.layer:
        t = layer.type
        if t == "Input":
            c = layer.input_param.shape[0].dim[1] if layer.input_param.shape else 3
            shapes[layer.top[0]] = (c, h, w)
            continue
        maybe = [shapes.get(b) for b in layer.bottom]
        ins = [s for s in maybe if s is not None]  # (C,H,W) of each bottom
        if len(ins) < len(maybe):  # an unknown input: unknown outputs
            for top in layer.top:
                shapes[top] = None
            continue
        c, ih, iw = ins[0]
        out: Optional[tuple[int, int, int]]
        if t == "Convolution":
            cp = layer.convolution_param
            (kh, kw), (sh, sw), (ph, pw) = _kernel(cp)
            d = list(cp.dilation) or [1]
            out = (
                cp.num_output,
                _out_len(ih, kh, sh, ph, False, d[0]),
                _out_len(iw, kw, sw, pw, False, d[-1]),
            )
        elif t == "Pooling":
            pp = layer.pooling_param
            if pp.global_pooling:
                out = (c, 1, 1)
            else:
                (kh, kw), (sh, sw), (ph, pw) = _kernel(pp)
                out = (
                    c,
                    _out_len(ih, kh, sh, ph, True, pad_any=ph or pw),
                    _out_len(iw, kw, sw, pw, True, pad_any=ph or pw),
                )
        elif t == "Concat":
            if len({s[1:] for s in ins}) != 1:
                out = None
            else:
                out = (sum(s[0] for s in ins), ih, iw)
        elif t == "InnerProduct":
            out = (layer.inner_product_param.num_output, 0, 0)  # not spatial
        else:  # ReLU, LRN, Dropout, Softmax, Split...: shape-preserving
            out = (c, ih, iw)
        if out is not None and (out[1] < 1 or out[2] < 1) and t != "InnerProduct":
            out = None
        for top in layer.top:
            shapes[top] = out
    return shapes


class _Topology:
    """Layer list, strides, channels and size limits of a deploy prototxt."""

    def __init__(self, netp):
        self.netp = netp
        native = infer_shapes(netp, NATIVE_SIZE, NATIVE_SIZE)
        self.infos = []
        self._min = {}
        for layer in netp.layer:
            if layer.type in ("Input", "InnerProduct", "Softmax", "Dropout", "Split"):
                continue
            for top in layer.top:
                if top in layer.bottom:
                    continue  # in-place (ReLU): a layer name, not a blob one can stop at
                shape = native.get(top)
                # blobs that are 1x1 (or not spatial) at 224 are the classifier head
                if shape is None or shape[1] <= 1 or shape[2] <= 1:
                    continue
                self.infos.append(LayerInfo(top, int(shape[0]), NATIVE_SIZE // shape[1]))
        self.names = {i.name for i in self.infos}

    def min_input_size(self, end):
        if end not in self._min:
            size = 0
            for n in range(1, 4 * NATIVE_SIZE):
                if infer_shapes(self.netp, n, n).get(end) is not None:
                    size = n
                    break
            self._min[end] = size
        return self._min[end]


def dream_netparameter(netp, end, slot=None):
    """The NetParameter of the cut, weight-gradient-free net for blob `end` (see top).

    end: a blob name, or the list of blobs an objective reads (engine/objectives.py): the
    net is cut after the last of them and the loss layer takes them all as bottoms.
    slot: the _SLOTS key through which the loss layer finds the objective of each step;
    None keeps the plain L2 objective of `end`."""
    ends = [end] if isinstance(end, str) else list(end)
    keep = sorted(set().union(*(_ancestors(netp, e) for e in ends)))
    out = caffe_pb2.NetParameter()
    out.name = (netp.name or "net") + "-to-" + "+".join(ends)
    for i in keep:
        src = netp.layer[i]
        layer = out.layer.add()
        if src.type == "Input":
            # same top blob, a Python layer with one dummy param that "needs" a gradient
            layer.name = "ddctl_input"
            layer.top.extend(src.top)
            _make_python(layer, "InputLayer")
            continue
        layer.CopyFrom(src)
        if src.type in ("Convolution", "InnerProduct"):
            bias = (
                src.convolution_param.bias_term
                if src.type == "Convolution"
                else src.inner_product_param.bias_term
            )
            del layer.param[:]
            for _ in range(2 if bias else 1):
                layer.param.add(lr_mult=0, decay_mult=0)
        elif src.type in _FAST_LAYERS:
            describe, params_field, python_layer = _FAST_LAYERS[src.type]
            param_str = describe(src)
            if param_str is not None:
                layer.ClearField(params_field)
                _make_python(layer, python_layer, param_str)
    _use_fast_convs(out)
    loss = out.layer.add(name="ddctl_objective")
    loss.bottom.extend(ends)
    loss.top.append("ddctl_objective")
    loss.loss_weight.append(1.0)
    if slot is None:
        _make_python(loss, "L2Objective")
    else:
        _make_python(loss, "ObjectiveLayer", slot)
    return out


def _make_python(layer, python_layer, param_str=None):
    """Turn a LayerParameter into one of this module's Python layers."""
    layer.type = "Python"
    layer.python_param.module = _MODULE
    layer.python_param.layer = python_layer
    if param_str is not None:
        layer.python_param.param_str = param_str


# -----------------------------------------------------------------------------
# Python layers (Caffe finds them as engine.caffe_net.<name>)


class InputLayer(caffe.Layer):
    """The `data` blob's producer. Holds one unused param so Caffe computes data's diff."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        top[0].reshape(1, 3, NATIVE_SIZE, NATIVE_SIZE)

    def reshape(self, bottom, top):
        pass  # the caller reshapes `data` itself

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass


class L2Objective(caffe.Layer):
    """The notebook's objective_L2: d/dx (|x|^2 / 2) = x, i.e. end.diff = end.data."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        top[0].data[...] = 0.0  # the objective's value is never read

    def backward(self, top, propagate_down, bottom):
        np.copyto(bottom[0].diff, bottom[0].data)


# the objective of the current step, per cut net: ObjectiveLayer finds its slot by param_str
_SLOTS: dict[str, Any] = {}


class ObjectiveLayer(caffe.Layer):
    """Any engine/objectives.py objective: backward lets it write its blobs' diffs
    (a plain blob name writes diff = data, the L2Objective above, bit for bit)."""

    def setup(self, bottom, top):
        self.slot = _SLOTS[self.param_str]

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        top[0].data[...] = 0.0  # the objective's value is never read

    def backward(self, top, propagate_down, bottom):
        blobs = [bottom[i] for i in range(len(bottom))]  # (the vector does not iterate)
        self.slot["objective"].set_diffs([b.data for b in blobs], [b.diff for b in blobs])


# Caffe's CPU max pooling and LRN are single-threaded scalar loops (28% and 15% of a step).
# With numba (Debian's python3-numba) they run on every core with Caffe's numbers: max
# pooling in engine/pool_kernels.py (vectorised; identical maxima, mask and backward sums),
# LRN in engine/lrn_kernels.py. Without numba, Caffe's own layers run.
try:
    import numba

    from engine import lrn_kernels, pool_kernels
except Exception:  # pragma: no cover - the image has it; the engine works without
    numba = None

if numba is not None:
    _maxpool_forward = pool_kernels.maxpool_forward
    _maxpool_backward = pool_kernels.maxpool_backward

    _lrn_forward = lrn_kernels.lrn_forward
    _lrn_backward = lrn_kernels.lrn_backward


def _scratch(owner, name, shape, dtype):
    """A scratch array of `shape` for a Python layer: a view of a buffer that only grows
    (Caffe's blobs do the same), touched when made so the pages are mapped once; a net
    reserved at its largest octave (CaffeNet.reserve) then never allocates again."""
    need = int(np.prod(shape))
    buf = owner.__dict__.get("_buf_" + name)
    if buf is None or buf.size < need:
        buf = np.empty(need, dtype)
        buf.fill(0)
        setattr(owner, "_buf_" + name, buf)
    return buf[:need].reshape(shape)


class LRNLayer(caffe.Layer):
    """Caffe's ACROSS_CHANNELS LRN with numba (see _lrn_forward)."""

    def setup(self, bottom, top):
        size, alpha, beta, k = self.param_str.split()
        self.size = int(size)
        alpha, beta = np.float32(alpha), np.float32(beta)  # Caffe's Dtype fields
        self.a = np.float32(alpha / np.float32(self.size))  # alpha_ / size_ in float
        self.crv = np.float32(2.0 * float(alpha) * float(beta) / self.size)  # in double
        self.nbeta = np.float32(-beta)
        self.glibc_pow = bool(self.nbeta == np.float32(-0.75))  # engine/powf.py's checked exponent
        self.k = np.float32(k)

    def reshape(self, bottom, top):
        shape = bottom[0].data.shape
        top[0].reshape(*shape)
        self.scale = _scratch(self, "scale", shape, np.float32)  # k + a * window sum of x^2
        self.power = _scratch(self, "power", shape, np.float32)  # scale^-beta (Caffe recomputes it)

    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        for i in range(x.shape[0]):
            _lrn_forward(
                x[i],
                y[i],
                self.scale[i],
                self.power[i],
                self.size,
                self.a,
                self.k,
                self.nbeta,
                self.glibc_pow,
            )

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, y, dy, dx = bottom[0].data, top[0].data, top[0].diff, bottom[0].diff
        for i in range(x.shape[0]):
            _lrn_backward(x[i], y[i], dy[i], self.scale[i], self.power[i], dx[i], self.size, self.crv)


class MaxPoolLayer(caffe.Layer):
    """Caffe's MAX Pooling (ceil output size, windows clipped to the picture) with numba."""

    def setup(self, bottom, top):
        self.kh, self.kw, self.sh, self.sw, self.ph, self.pw = map(int, self.param_str.split())

    def reshape(self, bottom, top):
        n, c, h, w = bottom[0].data.shape
        oh = _out_len(h, self.kh, self.sh, self.ph, True, pad_any=self.ph or self.pw)
        ow = _out_len(w, self.kw, self.sw, self.pw, True, pad_any=self.ph or self.pw)
        top[0].reshape(n, c, oh, ow)
        self.mask = _scratch(self, "mask", (n, c, oh, ow), np.int32)

    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        for i in range(x.shape[0]):
            _maxpool_forward(x[i], y[i], self.mask[i], self.kh, self.kw, self.sh, self.sw, self.ph, self.pw)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy, dx = top[0].diff, bottom[0].diff
        for i in range(dx.shape[0]):
            _maxpool_backward(dy[i], self.mask[i], dx[i])


def warm_up():
    """Compile (and cache, under $NUMBA_CACHE_DIR) the numba kernels: the image build runs
    this so dreams start without a compile pause. Returns whether numba is used."""
    if numba is None:
        return False
    if conv_kernels is not None:
        conv_kernels.warm_up()
    x = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    top = np.empty((2, 3, 3), np.float32)
    mask: np.ndarray = np.empty((2, 3, 3), np.int32)
    _maxpool_forward(x, top, mask, 3, 3, 2, 2, 1, 1)
    _maxpool_backward(top, mask, np.empty_like(x))
    y, scale, power, dx = (np.empty_like(x) for _ in range(4))
    for glibc_pow in (True, False):
        _lrn_forward(x, y, scale, power, 5, np.float32(2e-5), np.float32(1), np.float32(-0.75), glibc_pow)
    _lrn_backward(x, y, y, scale, power, dx, 5, np.float32(3e-5))
    return True


def _fast_lrn(layer):
    """The Python-layer replacement of an LRN layer, or None to keep Caffe's."""
    lp = layer.lrn_param
    if numba is None or lp.norm_region != caffe_pb2.LRNParameter.ACROSS_CHANNELS:
        return None
    return "%d %r %r %r" % (lp.local_size, lp.alpha, lp.beta, lp.k)


def _fast_pool(layer):
    """The Python-layer replacement of a MAX Pooling layer, or None to keep Caffe's."""
    pp = layer.pooling_param
    if numba is None or pp.pool != caffe_pb2.PoolingParameter.MAX or pp.global_pooling:
        return None
    (kh, kw), (sh, sw), (ph, pw) = _kernel(pp)
    return "%d %d %d %d %d %d" % (kh, kw, sh, sw, ph, pw)


# Caffe layer types the cut net runs as this module's numba layers, when describe() allows:
# type -> (describe(layer) -> param_str or None, the Caffe params field to clear, Python layer)
_FAST_LAYERS = {
    "Pooling": (_fast_pool, "pooling_param", "MaxPoolLayer"),
    "LRN": (_fast_lrn, "lrn_param", "LRNLayer"),
}


# -----------------------------------------------------------------------------
# convolutions (+ the in-place ReLU after them) on every core: engine/conv_kernels.py

conv_kernels: Any  # engine.conv_kernels, or None where numba or cblas_sgemm is missing
try:
    from engine import conv_kernels
except Exception:  # pragma: no cover - no numba, or no cblas_sgemm: Caffe's own layers
    conv_kernels = None

# DDCTL_CAFFE_CONV=1 keeps Caffe's own Convolution and ReLU layers (bench comparisons)
_FAST_CONV = os.environ.get("DDCTL_CAFFE_CONV") != "1"
_col_buffers = threading.local()  # one im2col buffer per thread, shared by its layers


def _col_buffer(rows, cols):
    """A (rows, cols) float32 scratch array: views of one growing buffer per thread
    (Caffe keeps one col buffer per convolution layer: ~0.4 GB at 1024x576)."""
    need = rows * cols
    buf = getattr(_col_buffers, "buf", None)
    if buf is None or buf.size < need:
        _col_buffers.buf = buf = np.empty(need, np.float32)
        buf.fill(0)  # map the pages now (see _scratch)
    return buf[:need].reshape(rows, cols)


def _fast_conv(layer):
    """param_str of the ConvLayer replacing a 2-D Convolution, or None to keep Caffe's."""
    cp = layer.convolution_param
    if conv_kernels is None or not _FAST_CONV or (cp.group or 1) != 1 or cp.axis != 1 or cp.force_nd_im2col:
        return None
    if len(cp.kernel_size) > 2 or len(cp.stride) > 2 or len(cp.pad) > 2 or len(cp.dilation) > 2:
        return None
    (kh, kw), (sh, sw), (ph, pw) = _kernel(cp)
    d = list(cp.dilation) or [1]
    return "%d %d %d %d %d %d %d %d %d %d" % (
        cp.num_output,
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
        d[0],
        d[-1],
        1 if cp.bias_term else 0,
    )


def _use_fast_convs(netp):
    """Turn the Convolution layers of a built NetParameter into ConvLayers, each taking in
    the in-place ReLU (slope 0) that follows it: same blobs, same names (the weights load
    by name), same lr_mult 0 params."""
    layers = list(netp.layer)
    keep = []
    skip = set()
    for i, layer in enumerate(layers):
        if i in skip:
            continue
        keep.append(layer)
        if layer.type != "Convolution":
            continue
        param_str = _fast_conv(layer)
        if param_str is None:
            continue
        top = layer.top[0]
        relu = 0
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if (
            nxt is not None
            and nxt.type == "ReLU"
            and list(nxt.bottom) == [top]
            and list(nxt.top) == [top]
            and nxt.relu_param.negative_slope == 0
        ):
            relu = 1
            skip.add(i + 1)
        layer.ClearField("convolution_param")
        _make_python(layer, "ConvLayer", "%s %d" % (param_str, relu))
    if skip:
        kept = [type(layers[0])() for _ in keep]
        for dst, src in zip(kept, keep):
            dst.CopyFrom(src)
        del netp.layer[:]
        netp.layer.extend(kept)


class ConvLayer(caffe.Layer):
    """Caffe's Convolution (group 1, 2-D) and the ReLU after it, with conv_kernels."""

    def setup(self, bottom, top):
        v = [int(t) for t in self.param_str.split()]
        self.cout, self.kh, self.kw, self.sh, self.sw, self.ph, self.pw, self.dh, self.dw = v[:9]
        self.has_bias, self.relu = bool(v[9]), bool(v[10])
        self.cin = bottom[0].data.shape[1]
        self.blobs.add_blob(self.cout, self.cin, self.kh, self.kw)  # filled by the weights file
        if self.has_bias:
            self.blobs.add_blob(self.cout)
        self.one_by_one = (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw) == (1, 1, 1, 1, 0, 0)
        self.no_bias = np.zeros(self.cout, np.float32)

    def reshape(self, bottom, top):
        n, c, h, w = bottom[0].data.shape
        self.oh = _out_len(h, self.kh, self.sh, self.ph, False, self.dh)
        self.ow = _out_len(w, self.kw, self.sw, self.pw, False, self.dw)
        top[0].reshape(n, self.cout, self.oh, self.ow)
        if not self.one_by_one:
            _col_buffer(self.cin * self.kh * self.kw, self.oh * self.ow)  # grown at reshape

    def _args(self):
        return self.kh, self.kw, self.sh, self.sw, self.ph, self.pw, self.dh, self.dw, self.oh, self.ow

    def forward(self, bottom, top):
        k, n = self.cin * self.kh * self.kw, self.oh * self.ow
        w = self.blobs[0].data.reshape(self.cout, k)
        bias = self.blobs[1].data if self.has_bias else self.no_bias
        x, y = bottom[0].data, top[0].data
        for i in range(x.shape[0]):
            if self.one_by_one:
                col = x[i].reshape(k, n)
            else:
                col = _col_buffer(k, n)
                conv_kernels.im2col(x[i], col, *self._args())
            yi = y[i].reshape(self.cout, n)
            conv_kernels.sgemm(False, self.cout, n, k, w, col, yi)
            if self.has_bias or self.relu:
                conv_kernels.bias_relu(yi, bias, self.has_bias, self.relu)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        k, n = self.cin * self.kh * self.kw, self.oh * self.ow
        w = self.blobs[0].data.reshape(self.cout, k)
        y, dy, dx = top[0].data, top[0].diff, bottom[0].diff
        for i in range(dy.shape[0]):
            dyi = dy[i].reshape(self.cout, n)
            if self.relu:
                conv_kernels.relu_backward(y[i].reshape(self.cout, n), dyi)
            if self.one_by_one:
                conv_kernels.sgemm(True, k, n, self.cout, w, dyi, dx[i].reshape(k, n))
            else:
                col = _col_buffer(k, n)
                conv_kernels.sgemm(True, k, n, self.cout, w, dyi, col)
                conv_kernels.col2im(col, dx[i], *self._args())


# -----------------------------------------------------------------------------
# the Net


class CaffeNet:
    """engine.net.Net on Caffe. One cut net per `end`, made on first use."""

    mean = MEAN_BGR

    def __init__(self, prototxt, weights, mean=None):
        caffe.set_mode_cpu()
        if mean is not None:
            self.mean = np.asarray(mean, dtype=np.float32).reshape(3)  # BGR, another model's
        self.prototxt, self.weights = prototxt, weights
        self.netp = read_prototxt(prototxt)
        self.topology = _Topology(self.netp)
        self._nets = {}
        self._slots = {}  # ends -> the _SLOTS entry of that cut net's ObjectiveLayer
        self._lock = threading.Lock()

    # --- Net protocol ---
    def layers(self):
        return list(self.topology.infos)

    def min_input_size(self, end):
        return self.topology.min_input_size(end)

    def input_gradient(self, data, end):
        """data (3,H,W) float32 BGR minus mean -> d(objective)/d(data), (3,H,W) float32.
        end: an engine/objectives.py objective, or a blob name (its L2, |end|^2/2)."""
        objective = objectives.as_objective(end, self.topology.names)
        ends = tuple(objective.layers)
        net, blob = self._net(ends)
        self._load(net, blob, data)
        n = len(net.layers)
        self._slots[ends]["objective"] = objective
        net._forward(0, n - 1)
        net._backward(n - 1, 0)
        return blob.diff[0].copy()

    def features(self, data, end):
        """data (3,H,W) float32 BGR minus mean -> blob `end`'s data, (C,h,w) float32."""
        net, blob = self._net(end)
        self._load(net, blob, data)
        net._forward(0, len(net.layers) - 1)
        return net.blobs[end].data[0].copy()

    def reserve(self, h, w, end):
        """Size the net for `end` at its largest picture (3,h,w) before the first step:
        Caffe reallocates (and zeroes) every blob whose size grows, so octaves run from the
        smallest up would pay that at each octave's first step. Allocated once at the
        largest size, the smaller octaves reuse the memory; the peak is the same."""
        objective = objectives.as_objective(end, self.topology.names)
        net, blob = self._net(tuple(objective.layers))
        c = blob.data.shape[1]
        if blob.data.shape != (1, c, h, w):
            blob.reshape(1, c, h, w)
            net.reshape()
        for b in net.blobs.values():
            b.data  # noqa: B018 - pycaffe allocates (and zeroes) a blob's memory on access
            b.diff  # noqa: B018

    def check_model(self):
        """None when the weights fit the prototxt, else one line (see check_model below)."""
        return check_model(self.prototxt, self.weights)

    # --- helpers ---
    @staticmethod
    def _load(net, blob, data):
        c, h, w = data.shape
        if blob.data.shape != (1, c, h, w):
            blob.reshape(1, c, h, w)
            net.reshape()
        blob.data[0] = data

    def _net(self, end):
        """(caffe.Net, its data blob) cut after blob `end` (or after each blob of a tuple)."""
        end = (end,) if isinstance(end, str) else tuple(end)
        with self._lock:
            if end not in self._nets:
                for name in end:
                    if name not in self.topology.names:
                        raise KeyError(name)
                slot_key = "%x-%d" % (id(self), len(_SLOTS))
                self._slots[end] = _SLOTS[slot_key] = {}
                netp = dream_netparameter(self.netp, list(end), slot_key)
                with tempfile.NamedTemporaryFile("w", suffix=".prototxt", prefix="ddctl-", delete=False) as f:
                    f.write(text_format.MessageToString(netp))
                try:
                    net = caffe.Net(f.name, self.weights, caffe.TEST)
                finally:
                    os.unlink(f.name)
                self._nets[end] = (net, net.blobs["data"])
            return self._nets[end]


def load_net(prototxt=None, weights=None, mean=None):
    """The image's Net: prototxt and weights default to $DDCTL_PROTOTXT and $DDCTL_WEIGHTS;
    mean (B, G, R) to bvlc_googlenet's."""
    prototxt = prototxt or os.environ["DDCTL_PROTOTXT"]
    weights = weights or os.environ["DDCTL_WEIGHTS"]
    return CaffeNet(prototxt, weights, mean)


# -----------------------------------------------------------------------------
# a model brought by the user: do its weights fit its prototxt?

_PARAM_SIZES = (
    "import json, sys, caffe; net = caffe.Net(sys.argv[1], caffe.TEST); "
    "print(json.dumps({k: [p.data.size for p in v] for k, v in net.params.items()}))"
)


def check_model(prototxt, weights):
    """None when Caffe builds the prototxt's net and the weights hold every one of its
    params, with the right sizes; else one line that says what is wrong. Caffe aborts the
    process on a net it cannot build, so the net is built in a child process."""
    trained = caffe_pb2.NetParameter()
    try:
        with open(weights, "rb") as f:
            trained.ParseFromString(f.read())
    except Exception as e:
        return "%s is not a Caffe weights file (.caffemodel): %s" % (os.path.basename(weights), e)
    have = {}
    for layer in list(trained.layer) + list(trained.layers):  # layers: the 2014 (V1) format
        have[layer.name] = [len(b.data) or len(b.double_data) for b in layer.blobs]
    import json
    import subprocess
    import sys

    env = dict(os.environ, GLOG_minloglevel="2")
    r = subprocess.run([sys.executable, "-I", "-c", _PARAM_SIZES, prototxt], capture_output=True, env=env)
    if r.returncode != 0:
        lines = [x for x in r.stderr.decode("utf-8", "replace").splitlines() if x.strip()]
        fatal = [x for x in lines if x[:1] == "F" or "Check failed" in x or "Error" in x]
        why = (fatal or lines or ["exit %d" % r.returncode])[-1]
        why = why.split("] ", 1)[-1] if why[:1] == "F" else why
        return "Caffe cannot build the network of %s: %s" % (
            os.path.basename(prototxt),
            " ".join(why.split()),
        )
    want = json.loads(r.stdout.decode().strip().splitlines()[-1])
    missing = [name for name in want if name not in have]
    if missing:
        return "%s holds no weights for %d layer(s) of %s (%s): they are made for another network" % (
            os.path.basename(weights),
            len(missing),
            os.path.basename(prototxt),
            ", ".join(missing[:3]),
        )
    for name, sizes in want.items():
        if have[name] != sizes:
            return "%s does not fit %s: layer %s holds %s values, the network wants %s" % (
                os.path.basename(weights),
                os.path.basename(prototxt),
                name,
                "+".join(map(str, have[name])) or "no",
                "+".join(map(str, sizes)),
            )
    return None
