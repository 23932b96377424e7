import sys

from shared.service import main
from services.downloader.service import build

sys.exit(main("downloader", build))
