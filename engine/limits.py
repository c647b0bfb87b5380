"""The engine's limits on every number of its command line: the one table it checks.

ddctl keeps the same table (ddctl/limits.py) to refuse a bad number on the host before
any download or container; a contract test asserts the two are equal. Each entry:
name -> (kind, lowest, highest, lowest allowed?) with kind 'int' or 'float', highest
None for no upper bound, and the last flag False when the lowest value itself is refused
(e.g. a step size must be more than 0). NaN and infinities are never allowed.
"""

LIMITS = {
    'iterations': ('int', 1, 100000, True),
    'octaves': ('int', 1, 100, True),
    'octave_scale': ('float', 1.0, 100.0, True),
    'step_size': ('float', 0.0, 1000.0, False),
    'jitter': ('int', 0, 100000, True),
    'seed': ('int', 0, 2**32 - 1, True),
    'max_size': ('int', 1, 1000000, True),
    'tile': ('int', 0, 1000000, True),  # 0: never tile; otherwise at least MIN_TILE (tiling.py)
    # --mode zoom (engine/zoom.py)
    'frames': ('int', 1, 9999, True),
    'scale': ('float', 0.0, 0.5, True),
    'rotate': ('float', -45.0, 45.0, True),
    'fps': ('float', 0.1, 120.0, True),
}
