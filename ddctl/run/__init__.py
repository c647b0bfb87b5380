"""`ddctl run`'s work, one room per job (no rendering here: ddctl/commands/run.py renders):

- options.py    DreamOptions and the engine's argv (`engine_command`), per the README contract
- transfer.py   how files travel: bind mounts or the API's archive copy
- naming.py     the output folder and the never-overwrite naming rule
- archive.py    tar in (the input picture) and tar out (the results, never overwriting)
- progress.py   the engine's event lines: line splitter, parser, ETA model
- container.py  the dream container's life: create, follow, collect, clean up
- dream.py      `prepare()` (everything checkable without Docker) and `dream()` (the run)
"""
