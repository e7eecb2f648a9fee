"""``python -m serving.cli``: the same as the ``nbo`` command."""

from serving.cli import main

main()
