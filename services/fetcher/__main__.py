import sys

from shared.service import main
from services.fetcher.service import Fetcher

sys.exit(main("fetcher", Fetcher))
