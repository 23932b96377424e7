"""`python -m services.downloader`: the same as `dongbo downloader`."""

import sys

from cli.main import main

sys.exit(main(["downloader", *sys.argv[1:]]))
