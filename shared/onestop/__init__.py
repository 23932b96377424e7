"""The one-stop system's API: the client, and the dossiers it returns."""

from shared.onestop.client import OneStopClient
from shared.onestop.models import Attachment, DocumentType, Dossier, InvalidDossier, format_vn_date, parse_vn_date
from shared.onestop.sync_response import parse_dossiers

__all__ = [
    "Attachment",
    "DocumentType",
    "Dossier",
    "InvalidDossier",
    "OneStopClient",
    "format_vn_date",
    "parse_dossiers",
    "parse_vn_date",
]
