"""The inspector: reads each stored PDF once and records its page count, signature and PDF/A claim."""
