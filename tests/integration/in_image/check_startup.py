"""Run inside the dream image: what importing the engine's Caffe net costs.

    python3 check_startup.py

`import caffe` imports caffe.io, which imports skimage and matplotlib (about 1 s of every
dream's start-up); the engine never uses caffe.io, so engine/caffe_net.py defers it. Prints
one JSON object: which of those modules the import loaded, and whether caffe.io still works
when something reads it (the notebook's caffe.Classifier uses caffe.io.Transformer).
"""

import json
import sys

from engine import caffe_net  # noqa: F401 - the import is what is measured

HEAVY = ("skimage", "matplotlib")
loaded_by_import = [name for name in HEAVY if name in sys.modules]

import caffe  # noqa: E402

transformer = caffe.io.Transformer({"data": (1, 3, 8, 8)})
transformer.set_transpose("data", (2, 0, 1))
picture = caffe.io.resize_image(__import__("numpy").zeros((4, 4, 3), "float32"), (8, 8))
print(
    json.dumps(
        {
            "loaded_by_import": loaded_by_import,
            "io_works": picture.shape == (8, 8, 3) and caffe.io is sys.modules["caffe.io"],
            "loaded_after_use": [name for name in HEAVY if name in sys.modules],
            "classifier": caffe.Classifier.__name__,
        }
    )
)
