import sys

from shared.service import main
from services.acker.service import build

sys.exit(main("acker", build))
