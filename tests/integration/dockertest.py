"""Names shared by the integration tests (import as `from dockertest import ...`).

DDCTL_TEST_SESSION lets several test runs share one daemon (e.g. two checkouts): each
run labels, and at its end removes, only what it made itself.
"""

import os

SESSION = os.environ.get("DDCTL_TEST_SESSION") or "1"
TEST_LABEL = {"io.ddctl.test": SESSION}
TEST_LABEL_FILTER = f"io.ddctl.test={SESSION}"
# The same label in the DDCTL_LABELS form ddctl reads (k=v,k2=v2).
TEST_LABELS_ENV = TEST_LABEL_FILTER
BASE_IMAGE = "debian:bullseye-slim"


def remove_session_leftovers(client, label_filter=TEST_LABEL_FILTER, keep=None, images_before=None):
    """Remove what this session's tests left on the daemon, by this session's label only:
    containers, then images (untagged ones included) but the one tagged `keep`. With
    `images_before` (the image IDs the daemon had when the session began), also the untagged
    dream images made since that carry no session label: the stages of multi-stage builds
    (e.g. the weights download stage) and builds a test made without the label.

    Lives here, not in conftest.py: tests import it, and `conftest` is a name that
    tests/integration/swarm/conftest.py shares."""
    for c in client.containers.list(all=True, filters={"label": label_filter}):
        try:
            c.remove(force=True)
        except Exception:
            pass
    for image in client.images.list(filters={"label": label_filter}):
        if keep and keep in image.tags:
            continue
        try:
            client.images.remove(image.id, force=True)
        except Exception:
            pass
    if images_before is not None:
        for image in client.images.list(filters={"dangling": True, "label": "io.ddctl.image"}):
            if image.id not in images_before:
                try:
                    client.images.remove(image.id)  # not forced: never one a container uses
                except Exception:
                    pass
