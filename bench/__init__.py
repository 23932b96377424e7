"""The dongbo benchmark: `python -m bench.run` (see bench/README.md).

It compares the pipeline (fetcher → RabbitMQ → downloaders → S3 → indexer → PostgreSQL → acker) with a
plain threaded copy of the same files (the floor for the machine) and with a sequential script of the
kind a department writes by hand, on a loopback link and on a WAN-like one, and probes the memory of the
fetcher and of a downloader on very large inputs.
"""
