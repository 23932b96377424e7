"""`python -m services.fetcher`: the same as `dongbo fetcher`."""

import sys

from cli.main import main

sys.exit(main(["fetcher", *sys.argv[1:]]))
