"""`python -m services.indexer`: the same as `dongbo indexer`."""

import sys

from cli.main import main

sys.exit(main(["indexer", *sys.argv[1:]]))
