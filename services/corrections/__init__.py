"""The corrections worker: sends the archive's corrections (a file replaced or deleted) to the one-stop system."""
