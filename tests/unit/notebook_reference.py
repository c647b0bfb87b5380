"""Plain transcription of Google's 2015 DeepDream notebook (google/deepdream dream.ipynb).

Kept as close to the 2015 text as Python 3 allows (xrange -> range, print and the IPython
display calls dropped); scipy.ndimage.zoom is used for real. The engine (engine/dream.py)
is tested against this file, so do not "improve" it.

`net` is anything with the caffe.Classifier attributes the notebook uses:
  net.blobs[name].data / .diff   (N,C,H,W) float32 arrays, net.blobs['data'].reshape(1,3,h,w)
  net.forward(end=name), net.backward(start=name)
  net.transformer.mean['data']   (3,1,1) float32 BGR mean
so it runs with the numpy fake net of tests/unit/test_engine_fakenet.py on the host and with
a real caffe.Classifier inside the image. For the in-image equality test:

    import caffe, numpy as np, notebook_reference as nb
    # prototxt = deploy.prototxt + 'force_backward: true' (the notebook's tmp.prototxt)
    net = caffe.Classifier(prototxt, weights, mean=np.float32([104.0, 116.0, 122.0]),
                           channel_swap=(2, 1, 0))
    np.random.seed(0)                                   # the notebook draws jitter from np.random
    ref = nb.deepdream(net, img, iter_n=2, octave_n=2, end='inception_3b/output', jitter=32)
    # engine: engine.dream.deepdream(engine_net, img, ..., rng=np.random.RandomState(0))
    # compare engine.dream.to_uint8(...) with nb.to_uint8(ref) (max difference <= 1)

This module never imports caffe. Requires numpy and scipy.
"""

import numpy as np
import scipy.ndimage as nd


# a couple of utility functions for converting to and from Caffe's input image layout
def preprocess(net, img):
    return np.float32(np.rollaxis(img, 2)[::-1]) - net.transformer.mean['data']


def deprocess(net, img):
    return np.dstack((img + net.transformer.mean['data'])[::-1])


def to_uint8(a):
    # what showarray did before saving: a = np.uint8(np.clip(a, 0, 255))
    return np.uint8(np.clip(a, 0, 255))


def objective_L2(dst):
    dst.diff[:] = dst.data


# guided dreaming: the notebook's guide cell and objective_guide
guide_features = None


def set_guide(net, guide, end):
    global guide_features
    # guide = np.float32(PIL.Image.open('flowers.jpg'))   (the caller loads the picture)
    h, w = guide.shape[:2]
    src, dst = net.blobs['data'], net.blobs[end]
    src.reshape(1, 3, h, w)
    src.data[0] = preprocess(net, guide)
    net.forward(end=end)
    guide_features = dst.data[0].copy()


def objective_guide(dst):
    x = dst.data[0].copy()
    y = guide_features
    ch = x.shape[0]
    x = x.reshape(ch, -1)
    y = y.reshape(ch, -1)
    A = x.T.dot(y)  # compute the matrix of dot-products with guide features
    dst.diff[0].reshape(ch, -1)[:] = y[:, A.argmax(1)]  # select ones that match best


def make_step(net, step_size=1.5, end='inception_4c/output', jitter=32, clip=True, objective=objective_L2):
    '''Basic gradient ascent step.'''

    src = net.blobs['data']  # input image is stored in Net's 'data' blob
    dst = net.blobs[end]

    ox, oy = np.random.randint(-jitter, jitter + 1, 2)
    src.data[0] = np.roll(np.roll(src.data[0], ox, -1), oy, -2)  # apply jitter shift

    net.forward(end=end)
    objective(dst)  # specify the optimization objective
    net.backward(start=end)
    g = src.diff[0]
    # apply normalized ascent step to the input image
    src.data[:] += step_size / np.abs(g).mean() * g

    src.data[0] = np.roll(np.roll(src.data[0], -ox, -1), -oy, -2)  # unshift image

    if clip:
        bias = net.transformer.mean['data']
        src.data[:] = np.clip(src.data, -bias, 255 - bias)


def deepdream(
    net,
    base_img,
    iter_n=10,
    octave_n=4,
    octave_scale=1.4,
    end='inception_4c/output',
    clip=True,
    **step_params,
):
    # prepare base images for all octaves
    octaves = [preprocess(net, base_img)]
    for _i in range(octave_n - 1):
        octaves.append(nd.zoom(octaves[-1], (1, 1.0 / octave_scale, 1.0 / octave_scale), order=1))

    src = net.blobs['data']
    detail = np.zeros_like(octaves[-1])  # allocate image for network-produced details
    for octave, octave_base in enumerate(octaves[::-1]):
        h, w = octave_base.shape[-2:]
        if octave > 0:
            # upscale details from the previous octave
            h1, w1 = detail.shape[-2:]
            detail = nd.zoom(detail, (1, 1.0 * h / h1, 1.0 * w / w1), order=1)

        src.reshape(1, 3, h, w)  # resize the network's input image size
        src.data[0] = octave_base + detail
        for _i in range(iter_n):
            make_step(net, end=end, clip=clip, **step_params)

            # visualization (showarray, print, clear_output) left out

        # extract details produced on the current octave
        detail = src.data[0] - octave_base
    # returning the resulting image
    return deprocess(net, src.data[0])
