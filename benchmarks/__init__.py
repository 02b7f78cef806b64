"""Benchmarks of kitaru's durable core, run with ``python -m benchmarks [--quick]``.

See ``benchmarks/run.py`` for what is measured and how; ``benchmarks/peers.py`` runs
the peer libraries (DBOS, LangGraph) in their own interpreters.
"""
