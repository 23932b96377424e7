"""`python -m services.inspector`: the same as `dongbo inspector`."""

import sys

from cli.main import main

sys.exit(main(["inspector", *sys.argv[1:]]))
