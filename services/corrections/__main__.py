"""`python -m services.corrections`: the same as `dongbo corrections`."""

import sys

from services.corrections.service import build
from shared.service import main

sys.exit(main("corrections", build))
