"""Kitaru's framework adapters: agents of other frameworks made durable.

- ``kitaru.adapters.pydantic_ai`` (``pip install 'kitaru[pydantic-ai]'``);
- ``kitaru.adapters.openai_agents`` (``pip install 'kitaru[openai-agents]'``).

Each is imported only when a program imports it, so the framework it needs is loaded
only then. Inside a flow body, every model request and tool call of a wrapped agent is
a durable call of the flow.
"""
