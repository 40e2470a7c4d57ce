"""``python -m mtpjax.cli COMMAND ...`` (the same as the ``mtpjax`` script)."""
import sys

from mtpjax.cli import main

sys.exit(main())
