"""The web application for officials: find a dossier, open its files, watch the sync's health (`dongbo web`)."""
