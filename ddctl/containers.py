"""Short-lived helper containers: create, start, wait, read the logs, always remove."""

import contextlib


def run_to_completion(client, image, timeout=None, **create_kwargs):
    """Run `image` once and return (exit status, stdout text, stderr text).

    The container is removed whatever happens (an error, Ctrl-C), so a helper run never
    leaves anything behind on the daemon. SDK errors propagate for the caller to translate.
    """
    container = client.containers.create(image, **create_kwargs)
    try:
        container.start()
        code = int(container.wait(timeout=timeout).get("StatusCode", 1))
        out = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        err = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
        return code, out, err
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)
