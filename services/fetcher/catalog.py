"""Copying the one-stop document-type catalog into `loai_tai_lieu` at start and every
DONGBO_CATALOG_INTERVAL seconds.

The fetcher asks before each poll round whether a copy is due. A failed copy never stops the poll (the
catalog only names the types; files are stored whatever their type): it is tried again next round.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Gauge
from sqlalchemy.engine import Engine

from shared.db.document_types import store_catalog, unknown_document_types
from shared.errors import DongboError
from shared.onestop import OneStopClient

log = logging.getLogger(__name__)

UNKNOWN_TYPE_FILES = Gauge("dongbo_unknown_type_files", "Current files whose matailieu the catalog does not list")


class CatalogCopier:
    def __init__(self, client: OneStopClient, engine: Engine, interval: float):
        self.client = client
        self.engine = engine
        self.interval = interval
        self.last_copy: float | None = None  # monotonic time of the last good copy

    def copy_if_due(self) -> bool:
        """Copies the catalog when none was copied yet or the interval has passed; True when it did."""
        if self.last_copy is not None and time.monotonic() - self.last_copy < self.interval:
            return False
        try:
            types = self.client.document_types()
            change = store_catalog(self.engine, types)
            unknown = unknown_document_types(self.engine)
        except (DongboError, OSError) as exc:
            log.warning("document-type catalog not copied (%s); trying again next round", exc)
            return False
        except Exception as exc:  # a database fault among others: the poll goes on regardless
            log.warning("document-type catalog not copied (%s: %s); trying again next round",
                        type(exc).__name__, exc)
            return False
        self.last_copy = time.monotonic()
        UNKNOWN_TYPE_FILES.set(sum(count for _, count in unknown))
        log.info("document-type catalog copied: %d types listed, %d retired; %d files of unknown types",
                 change.listed, change.retired, sum(count for _, count in unknown))
        for matailieu, count in unknown:
            log.warning("document type %s is not in the catalog (%d files)", matailieu, count)
        return True
