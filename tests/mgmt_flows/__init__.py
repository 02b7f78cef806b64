"""Flows that the execution-management tests run in their own processes.

Each module prints ``{"exec_id": ...}`` as its first line (so a test can act on the
execution while the process is alive), then one JSON line with how the run ended.
Behaviour a test changes is read from environment variables at call time.
"""
