"""``python -m kitaru._mcp``: the same as the ``kitaru-mcp`` command."""

from kitaru._mcp import main

if __name__ == "__main__":
    main()
