"""``python -m kitaru``: the ``kitaru`` command, run by this interpreter."""

from kitaru.cli import main

if __name__ == "__main__":
    main(prog_name="kitaru")
