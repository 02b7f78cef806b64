"""A traced flow and the program that runs it under a tracer provider, for the tracing tests.

Run as ``python -m tests.otel_flows.traced MODE ...`` from the repository root.
"""
