"""Flows that the dashboard tests run in their own processes."""
