"""Benchmarks of asyncsession against SQLAlchemy's AsyncSession and the raw drivers.

Run them with ``make bench`` (or ``python -m benchmarks [NAME_FILTER ...]``). To
add some, write ``benchmarks/bench_<topic>.py`` defining ``WORKLOADS``, a list of
:class:`benchmarks._runner.Workload`; :mod:`benchmarks._runner` explains the rules.
"""
