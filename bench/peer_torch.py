"""The PyTorch peer: the engine's DeepDream on PyTorch's CPU convolutions (oneDNN).

    bench/.venv/bin/python bench/peer_torch.py PICTURE.png OUT.png [--layer inception4c]
        [--iterations 10 --octaves 4 --octave-scale 1.4 --seed 0]

Run by bench/peer_vs_engine.py in its own venv (torch and torchvision are never ddctl's
dependencies). It is the algorithm a user of a PyTorch DeepDream runs, made the same as the
engine's: engine/dream.py's deepdream (the notebook's octaves, jitter, step normalisation
and clipping, in numpy) drives a Net whose input_gradient is torchvision's GoogLeNet, untrained
(weights=None: same shape and cost class as bvlc_googlenet), cut after `--layer`, in eval
mode with no weight gradients (requires_grad off on every parameter), objective L2 as the
notebook's: backward from `end` with end's own values as its gradient.
Prints one JSON line per step ({"event": "step", "octave", "iteration", "elapsed", ...})
and a last {"event": "done", ...} with the FLOPs of its convolutions (forward + input
backward) and the import/setup time, like the engine's own events.
"""

import argparse
import json
import os
import sys
import time

T0 = time.perf_counter()
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from engine import dream  # noqa: E402  (pure numpy; never imports caffe)

ORDER = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3"]
ORDER += ["inception4a", "inception4b", "inception4c", "inception4d", "inception4e"]


class TorchNet:
    """engine.net.Net on torchvision's GoogLeNet (untrained), cut after `end`."""

    mean = np.array([104.0, 116.0, 122.0], dtype=np.float32)  # the same preprocessing

    def __init__(self, end):
        torch.manual_seed(0)
        full = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
        full.eval().requires_grad_(False)  # DeepDream needs the input's gradient only
        self.body = torch.nn.Sequential(*[getattr(full, n) for n in ORDER[: ORDER.index(end) + 1]])
        self.flops = 0  # conv FLOPs of the steps so far: forward + input backward
        for m in self.body.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.register_forward_hook(self._count)

    def _count(self, module, inputs, output):
        kh, kw = module.kernel_size
        macs = output.numel() * (module.in_channels // module.groups) * kh * kw
        self.flops += 2 * 2 * macs  # 2 FLOPs a multiply-add; forward + input backward

    def input_gradient(self, data, end):
        x = torch.from_numpy(data[None]).requires_grad_(True)  # (1,3,H,W)
        y = self.body(x)
        y.backward(y.detach())  # the notebook's objective_L2: end.diff = end.data
        return x.grad[0].numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("picture")
    ap.add_argument("output")
    ap.add_argument("--layer", default="inception4c", choices=ORDER[5:])
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--octaves", type=int, default=4)
    ap.add_argument("--octave-scale", type=float, default=1.4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    img = np.asarray(Image.open(a.picture).convert("RGB"))  # (H,W,3) uint8
    net = TorchNet(a.layer)
    t_setup = time.perf_counter() - T0
    t0 = time.perf_counter()

    def progress(octave, iteration, data):
        h, w = data.shape[-2:]
        print(
            json.dumps(
                dict(
                    event="step",
                    octave=octave,
                    iteration=iteration,
                    width=w,
                    height=h,
                    elapsed=round(time.perf_counter() - t0, 4),
                )
            ),
            flush=True,
        )

    out = dream.deepdream(
        net,
        img,
        iter_n=a.iterations,
        octave_n=a.octaves,
        octave_scale=a.octave_scale,
        end=a.layer,
        rng=np.random.RandomState(a.seed),
        progress=progress,
    )
    Image.fromarray(dream.to_uint8(out)).save(a.output)
    done = dict(
        event="done",
        elapsed=round(time.perf_counter() - t0, 4),
        setup=round(t_setup, 3),
        flops=net.flops,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        torchvision=torchvision.__version__,
    )
    print(json.dumps(done), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
