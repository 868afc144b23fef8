"""``python -m flume``: the ``flume`` command (see :mod:`flume.cli`)."""

from flume.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
