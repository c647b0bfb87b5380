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
