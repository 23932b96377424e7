"""`python -m services.acker`: the same as `dongbo acker`."""

import sys

from cli.main import main

sys.exit(main(["acker", *sys.argv[1:]]))
