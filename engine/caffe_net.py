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
    forward/backward (which build dicts of outputs) are skipped.
Measured at 1024x576 to inception_4c/output (2 cores, OpenBLAS): 1.34 s a step against
2.24 s for the notebook's net, with a bitwise identical gradient. (Max Pooling and LRN as
vectorised numpy Python layers were tried: 2.6 s a step, numpy being single-threaded too.)
"""
import os
import tempfile
import threading

os.environ.setdefault("GLOG_minloglevel", "2")  # Caffe's glog chatter off unless asked

import numpy as np  # noqa: E402

import caffe  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

try:
    from engine.net import LayerInfo
except ImportError:  # pragma: no cover - engine.net is the other half of the engine
    from collections import namedtuple
    LayerInfo = namedtuple("LayerInfo", "name channels stride")

MEAN_BGR = np.array([104.0, 116.0, 122.0], dtype=np.float32)  # bvlc_googlenet, as the notebook
NATIVE_SIZE = 224       # bvlc_googlenet's training input side
_MODULE = __name__       # the Python layers below are found by Caffe under this module name


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
                inp.input_param.shape.add(dim=netp.input_dim[4 * i:4 * i + 4])
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


def _out_len(n, k, s, p, ceil_mode, dilation=1):
    """Caffe's output length of a conv (floor) or pooling (ceil, clipped) window."""
    k = dilation * (k - 1) + 1
    if not ceil_mode:
        return (n + 2 * p - k) // s + 1
    out = int(np.ceil(float(n + 2 * p - k) / s)) + 1
    if p and (out - 1) * s >= n + p:  # Caffe: the last window must start inside the picture
        out -= 1
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
    return (pick("kernel_size", "kernel_h", "kernel_w", 1),
            pick("stride", "stride_h", "stride_w", 1),
            pick("pad", "pad_h", "pad_w", 0))


def infer_shapes(netp, h, w):
    """{blob: (C, H, W)} for an input of h x w, by Caffe's rules, without running Caffe.
    Blobs that cannot exist at that size map to None (a window larger than its input)."""
    shapes = {}
    for layer in netp.layer:
        t = layer.type
        if t == "Input":
            c = layer.input_param.shape[0].dim[1] if layer.input_param.shape else 3
            shapes[layer.top[0]] = (c, h, w)
            continue
        ins = [shapes.get(b) for b in layer.bottom]
        if any(s is None for s in ins):
            for top in layer.top:
                shapes[top] = None
            continue
        c, ih, iw = ins[0]
        if t == "Convolution":
            cp = layer.convolution_param
            (kh, kw), (sh, sw), (ph, pw) = _kernel(cp)
            d = list(cp.dilation) or [1]
            out = (cp.num_output, _out_len(ih, kh, sh, ph, False, d[0]),
                   _out_len(iw, kw, sw, pw, False, d[-1]))
        elif t == "Pooling":
            pp = layer.pooling_param
            if pp.global_pooling:
                out = (c, 1, 1)
            else:
                (kh, kw), (sh, sw), (ph, pw) = _kernel(pp)
                out = (c, _out_len(ih, kh, sh, ph, True), _out_len(iw, kw, sw, pw, True))
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


def dream_netparameter(netp, end):
    """The NetParameter of the cut, weight-gradient-free net for blob `end` (see top)."""
    keep = _ancestors(netp, end)
    out = caffe_pb2.NetParameter()
    out.name = (netp.name or "net") + "-to-" + end
    for i in keep:
        src = netp.layer[i]
        layer = out.layer.add()
        if src.type == "Input":
            # same top blob, a Python layer with one dummy param that "needs" a gradient
            layer.name = "ddctl_input"
            layer.type = "Python"
            layer.top.extend(src.top)
            layer.python_param.module = _MODULE
            layer.python_param.layer = "InputLayer"
            continue
        layer.CopyFrom(src)
        if src.type in ("Convolution", "InnerProduct"):
            bias = (src.convolution_param.bias_term if src.type == "Convolution"
                    else src.inner_product_param.bias_term)
            del layer.param[:]
            for _ in range(2 if bias else 1):
                layer.param.add(lr_mult=0, decay_mult=0)
    loss = out.layer.add(name="ddctl_objective", type="Python")
    loss.bottom.append(end)
    loss.top.append("ddctl_objective")
    loss.loss_weight.append(1.0)
    loss.python_param.module = _MODULE
    loss.python_param.layer = "L2Objective"
    return out


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


# -----------------------------------------------------------------------------
# the Net

class CaffeNet:
    """engine.net.Net on Caffe. One cut net per `end`, made on first use."""

    mean = MEAN_BGR

    def __init__(self, prototxt, weights):
        caffe.set_mode_cpu()
        self.prototxt, self.weights = prototxt, weights
        self.netp = read_prototxt(prototxt)
        self.topology = _Topology(self.netp)
        self._nets = {}
        self._lock = threading.Lock()

    # --- Net protocol ---
    def layers(self):
        return list(self.topology.infos)

    def min_input_size(self, end):
        return self.topology.min_input_size(end)

    def input_gradient(self, data, end):
        """data (3,H,W) float32 BGR minus mean -> d(|end|^2/2)/d(data), (3,H,W) float32."""
        net, blob = self._net(end)
        c, h, w = data.shape
        if blob.data.shape != (1, c, h, w):
            blob.reshape(1, c, h, w)
            net.reshape()
        blob.data[0] = data
        n = len(net.layers)
        net._forward(0, n - 1)
        net._backward(n - 1, 0)
        return blob.diff[0].copy()

    # --- helpers ---
    def _net(self, end):
        with self._lock:
            if end not in self._nets:
                if end not in self.topology.names:
                    raise KeyError(end)
                netp = dream_netparameter(self.netp, end)
                with tempfile.NamedTemporaryFile("w", suffix=".prototxt", prefix="ddctl-",
                                                 delete=False) as f:
                    f.write(text_format.MessageToString(netp))
                try:
                    net = caffe.Net(f.name, self.weights, caffe.TEST)
                finally:
                    os.unlink(f.name)
                self._nets[end] = (net, net.blobs["data"])
            return self._nets[end]


def load_net(prototxt=None, weights=None):
    """The image's Net: prototxt and weights default to $DDCTL_PROTOTXT and $DDCTL_WEIGHTS."""
    prototxt = prototxt or os.environ["DDCTL_PROTOTXT"]
    weights = weights or os.environ["DDCTL_WEIGHTS"]
    return CaffeNet(prototxt, weights)
