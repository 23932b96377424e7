"""Proving what the archive holds: a dossier's journey, reconciliation with the one-stop system, fixity
audits, PDF facts and BagIt export. The queries live here so that the commands and a web view share them.

Every checking command ends with one of three exit codes, the same everywhere.
"""

GOOD = 0  # checked, nothing wrong
GAPS = 1  # checked, and something is missing or differs
COULD_NOT_RUN = 2  # a setting, a server or the schema stopped the check
