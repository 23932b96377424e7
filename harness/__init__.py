"""The test harness: real servers started for a test or a benchmark (S3, simulators, file hosts, proxies,
the pipeline's processes). Imported by tests/ and bench/, never by the product."""
