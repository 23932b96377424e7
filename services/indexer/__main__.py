import sys

from shared.service import main
from services.indexer.service import build

sys.exit(main("indexer", build))
