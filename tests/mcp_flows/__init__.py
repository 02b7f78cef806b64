"""Flows that ``tests/test_mcp_server.py`` runs and then manages through ``kitaru-mcp``."""
