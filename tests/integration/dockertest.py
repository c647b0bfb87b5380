"""Names shared by the integration tests (import as `from dockertest import ...`)."""
TEST_LABEL = {"io.ddctl.test": "1"}
TEST_LABEL_FILTER = "io.ddctl.test=1"
BASE_IMAGE = "debian:bullseye-slim"
