# One image for every dongbo process: the entrypoint is the `dongbo` command and the service is its argument
#   docker run --rm dongbo fetcher | downloader | indexer | acker | db upgrade | onestop-sim ... | --help
# Built by `docker compose build` (see docker-compose.yml), or: docker build -t dongbo .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    DONGBO_METRICS_PORT=9100

# The services run as this unprivileged user; /data is the simulator's state (a volume in compose).
RUN groupadd --system --gid 10001 dongbo \
 && useradd --system --uid 10001 --gid dongbo --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin dongbo \
 && mkdir -p /data \
 && chown dongbo:dongbo /data

WORKDIR /app

# 1. The dependencies, in their own layer: rebuilt only when the lock file changes, not on every code edit.
#    requirements.lock pins every package with its hashes: the runtime dependencies and the simulator's
#    (the demo profile runs `dongbo onestop-sim` from this image), never the development tools.
COPY pyproject.toml README.md requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

# 2. The code, installed as a package (with the migrations) without touching the dependencies again.
COPY shared ./shared
COPY services ./services
COPY cli ./cli
RUN pip install --no-deps . \
 && rm -rf build ./*.egg-info

USER 10001:10001

# Prometheus metrics and GET /healthz of the service (DONGBO_METRICS_PORT).
EXPOSE 9100
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["dongbo", "healthcheck"]

ENTRYPOINT ["dongbo"]
CMD ["--help"]
