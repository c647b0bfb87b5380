"""ddctl: DeepDream pictures with Docker."""

__version__ = "0.1.0"
