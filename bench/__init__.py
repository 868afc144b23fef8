"""flume's benchmark: flume against raw LMDB, raw RocksDB and sqlite3 on the same data.

Run it as ``python -m bench --n 1000000`` from the repository root; see ``bench/README.md``.
Modules: :mod:`bench.common` (rows, config, data), :mod:`bench.baselines`,
:mod:`bench.flume_workloads`, :mod:`bench.ratios` (the targets), :mod:`bench.harness` (the
command), :mod:`bench.machine`, :mod:`bench.chart`.
"""
