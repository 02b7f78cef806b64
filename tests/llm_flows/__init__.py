"""Flows that make ``kitaru.llm()`` calls, for the tests that run, kill and resume them.

Each module runs as ``python -m tests.llm_flows.NAME`` from the repository root, and a
resuming ``kitaru`` process imports it again through what the journal recorded.
Behaviour a test changes between the first process and the resuming one is read from
``LLMFLOW_*`` environment variables when it is needed, never at import.
"""
