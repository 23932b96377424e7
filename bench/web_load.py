"""The web application under load: 200,000 dossiers in PostgreSQL, search and dashboard timings.

    .venv/bin/python -m bench.web_load [--dossiers 200000] [--searches 400] [--dashboards 60]
                                       [--big-file-mb 0] [--keep]

A fresh database is filled by COPY (not through the pipeline): ho_so and sync_state rows with Vietnamese
names drawn from the simulator's word lists, five units, three years of received dates and synced times
over the last 60 days. The pages are then requested in-process through the ASGI app (template rendering
included, no network), and the 50th and 95th percentiles printed per kind of search and for the
dashboard. The dashboard's checks of RabbitMQ, S3 and the one-stop system are cached by the app (at most
one round every 15 s, bounded to a few seconds); they are warmed once before timing and not counted.

With --big-file-mb N, an N MB object is also put in a SeaweedFS bucket and downloaded through the app,
and the process's peak resident memory growth is reported (streaming keeps it near one chunk).
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from harness import services
from services.onestop_sim.vocab import FAMILY_NAMES, GIVEN_NAMES, MIDDLE_NAMES, PROCEDURES
from services.web.folding import fold

UNITS = [f"000.00.{n}.H55" for n in (17, 12, 21, 31, 44)]
PASSWORD = "bench-password-1"


def fill(url: str, count: int, rng: random.Random) -> list[dict]:
    """COPYs `count` dossiers; returns a sample of them to search for."""
    import psycopg

    now = datetime.now(UTC)
    sample: list[dict] = []
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
        with cursor.copy("COPY ho_so (mahoso, madonvi, tentochuccanhan, ngaynhan, mathutuc, tenthutuc, file_count, "
                         "state, fetched_at, indexed_at, synced_at) FROM STDIN") as copy_ho_so:
            for n in range(count):
                unit = UNITS[n % len(UNITS)]
                received = date(2022, 1, 1) + timedelta(days=rng.randrange(3 * 365))
                mahoso = f"{unit}-{received:%y%m%d}-{n:06d}"
                name = f"{rng.choice(FAMILY_NAMES)} {rng.choice(MIDDLE_NAMES)} {rng.choice(GIVEN_NAMES)}"
                code, title = PROCEDURES[rng.randrange(len(PROCEDURES))][:2]
                synced = now - timedelta(seconds=rng.randrange(60 * 86400))
                copy_ho_so.write_row((mahoso, unit, name, received, code, title, 3, "synced", synced, synced, synced))
                if n % (count // 200 or 1) == 0:
                    sample.append({"mahoso": mahoso, "name": name, "unit": unit, "received": received,
                                   "procedure": code})
        with cursor.copy("COPY sync_state (mahoso, madonvi, status, source_hash, publish_count, attempts, "
                         "last_reason, first_seen_at, updated_at, synced_at) FROM STDIN") as copy_state:
            rng2 = random.Random(2)
            for n in range(count):
                unit = UNITS[n % len(UNITS)]
                roll = rng2.random()
                status, reason = ("failed", "file-not-found") if roll < 0.002 else \
                    ("queued", None) if roll < 0.005 else ("synced", None)
                copy_state.write_row((f"bench-{n:06d}", unit, status, "", 1, 1, reason, now, now,
                                      now if status == "synced" else None))
        connection.commit()
        cursor.execute("ANALYZE")
    return sample


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def searches(sample: list[dict], count: int, rng: random.Random) -> list[tuple[str, dict]]:
    kinds = []
    for _ in range(count):
        d = rng.choice(sample)
        kinds.append(rng.choice([
            ("mahoso whole", {"q": d["mahoso"]}),
            ("mahoso prefix", {"q": d["mahoso"][:20]}),
            ("name with diacritics", {"q": d["name"]}),
            ("name without diacritics", {"q": fold(d["name"])}),
            ("part of a name", {"q": fold(d["name"]).split(" ", 1)[1]}),
            ("unit + date range", {"unit": d["unit"], "from": (d["received"] - timedelta(days=10)).isoformat(),
                                   "to": d["received"].isoformat()}),
            ("procedure + unit", {"procedure": d["procedure"], "unit": d["unit"]}),
            ("no filter, page 5", {"page": "5"}),
        ]))
    return kinds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=200_000)
    parser.add_argument("--searches", type=int, default=400)
    parser.add_argument("--dashboards", type=int, default=60)
    parser.add_argument("--big-file-mb", type=int, default=0)
    args = parser.parse_args(argv)

    from fastapi.testclient import TestClient

    from services.web import accounts, health
    from services.web.app import create_app
    from shared.db.engine import make_engine, upgrade
    from shared.settings import load_settings

    rng = random.Random(1)
    s3 = services.start_s3() if args.big_file_mb else None
    try:
        with services.fresh_database() as url:
            upgrade(url)
            started = time.perf_counter()
            sample = fill(url, args.dossiers, rng)
            print(f"filled {args.dossiers} dossiers in {time.perf_counter() - started:.1f} s")
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            extra = {}
            if s3:
                s3.client().make_bucket(bucket)
                extra = {"s3_endpoint": s3.endpoint, "s3_access_key": s3.access_key,
                         "s3_secret_key": s3.secret_key, "s3_bucket": bucket}
            settings = load_settings(database_url=url, units=UNITS, **extra)
            engine = make_engine(url)
            health.CACHE_SECONDS = 3600.0  # the external checks are not what is measured here
            app = create_app(settings, engine=engine)
            accounts.add_user(engine, "bench", "operator", [], PASSWORD)
            client = TestClient(app)
            form = client.get("/login").text
            token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            assert client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token},
                               follow_redirects=False).status_code == 303
            for params in ({"q": "nguyen"}, {}):  # warm the pool and the caches
                client.get("/search", params=params)
            client.get("/health")

            timings: dict[str, list[float]] = {}
            for kind, params in searches(sample, args.searches, rng):
                started = time.perf_counter()
                response = client.get("/search", params=params)
                timings.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
            every = [t for values in timings.values() for t in values]
            print(f"\nsearch over {args.dossiers} dossiers, {len(every)} requests (ms):")
            print(f"  {'kind':<26} {'n':>4} {'p50':>7} {'p95':>7}")
            for kind, values in timings.items():
                print(f"  {kind:<26} {len(values):>4} {statistics.median(values):>7.1f} "
                      f"{percentile(values, 0.95):>7.1f}")
            print(f"  {'all':<26} {len(every):>4} {statistics.median(every):>7.1f} {percentile(every, 0.95):>7.1f}")

            board = []
            for _ in range(args.dashboards):
                started = time.perf_counter()
                assert client.get("/health").status_code == 200
                board.append((time.perf_counter() - started) * 1000)
            print(f"\ndashboard, {len(board)} requests (ms): p50 {statistics.median(board):.1f}, "
                  f"p95 {percentile(board, 0.95):.1f}")

            if s3:
                big_download(client, engine, s3, bucket, args.big_file_mb)
            engine.dispose()
    finally:
        if s3:
            s3.stop()
    return 0


def big_download(client, engine, s3, bucket: str, megabytes: int) -> None:
    """Puts an N MB object behind a tai_lieu row and downloads it through the app, counting memory."""
    import hashlib

    import psutil
    import sqlalchemy

    size = megabytes * 1024 * 1024
    block = bytes(range(256)) * 4096  # 1 MiB, not compressible to nothing
    digest = hashlib.sha256()

    class Source(io.RawIOBase):
        sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            n = min(len(buffer), size - self.sent, len(block))
            buffer[:n] = block[:n]
            digest.update(block[:n])
            self.sent += n
            return n

    key = "bench/big.pdf"
    s3.client().put_object(bucket, key, io.BufferedReader(Source(), 8 * 1024 * 1024), size,
                           part_size=16 * 1024 * 1024)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        dossier = connection.execute(sqlalchemy.text("SELECT id, mahoso FROM ho_so LIMIT 1")).one()
        file_id = connection.execute(sqlalchemy.text(
            "INSERT INTO tai_lieu (ho_so_id, mahoso, matailieu, tentailieu, ten_file, url_file, object_key, size, "
            "sha256, content_type, content_type_mismatch, stored_at) VALUES (:h, :m, 'BIG', 'Tệp lớn', "
            "'Tệp lớn.pdf', 'http://x/big', :k, :s, :d, 'application/pdf', false, :t) RETURNING id"),
            {"h": dossier.id, "m": dossier.mahoso, "k": key, "s": size, "d": digest.hexdigest(), "t": now}).scalar()
    process = psutil.Process()
    before = peak = process.memory_info().rss
    received = hashlib.sha256()
    started = time.perf_counter()
    with client.stream("GET", f"/file/{file_id}") as response:
        for number, chunk in enumerate(response.iter_bytes()):
            received.update(chunk)
            if number % 64 == 0:
                peak = max(peak, process.memory_info().rss)
    seconds = time.perf_counter() - started
    grown = (peak - before) / 1024**2
    assert received.hexdigest() == digest.hexdigest()
    print(f"\ndownload of {megabytes} MB through the app: {seconds:.1f} s; resident memory "
          f"{before / 1024**2:.0f} MB before, {grown:+.0f} MB at most during it")


if __name__ == "__main__":
    raise SystemExit(main())
