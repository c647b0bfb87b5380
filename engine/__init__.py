"""ddctl's dream engine: runs inside the image as `python3 -m engine`.

Never imports ddctl (the host tool); the two meet only through the contracts in README.md.
"""
