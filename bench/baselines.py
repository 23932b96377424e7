"""The two yardsticks: a plain threaded copy (the floor) and a sequential script (what a department writes).

Neither uses anything from dongbo: only requests, minio and SQLAlchemy, as someone without dongbo would.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import requests
import sqlalchemy
import urllib3
from minio import Minio

PART_SIZE = 8 * 1024**2


def plain_copy(files: list[tuple[str, int, str]], *, s3_endpoint: str, access_key: str, secret_key: str,
               bucket: str, threads: int) -> float:
    """GET each url_file and stream it into the bucket, `threads` at a time; returns the seconds taken.

    No queue, no database, no acknowledgement, no checks beyond the HTTP status: the fastest this machine
    moves these bytes from that server to that store with that much concurrency. The list of files is
    known beforehand (the clock does not include asking the one-stop system for it).
    """
    http = urllib3.PoolManager(maxsize=threads, retries=urllib3.Retry(total=3, backoff_factor=0.2,
                                                                      status_forcelist=[500, 502, 503, 504]))
    client = Minio(s3_endpoint, access_key=access_key, secret_key=secret_key, secure=False, http_client=http)
    local = threading.local()

    def copy(item: tuple[str, int, str]) -> None:
        url, _size, key = item
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        with session.get(url, stream=True, timeout=(10, 300)) as response:
            response.raise_for_status()
            length = int(response.headers["Content-Length"])
            client.put_object(bucket, key, response.raw, length, part_size=PART_SIZE,
                              content_type=response.headers.get("Content-Type", "application/octet-stream"))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(copy, files):
            pass
    return time.monotonic() - started


def sequential_script(api_url: str, units: list[str], *, username: str, password: str, s3_endpoint: str,
                      access_key: str, secret_key: str, bucket: str, database_url: str) -> tuple[float, int]:
    """The hand-written way: log in, fetch the list, then per dossier download each file, put it in the
    bucket, insert the rows and mark the dossier synced — one thing at a time. Returns (seconds, dossiers)."""
    started = time.monotonic()
    minio = Minio(s3_endpoint, access_key=access_key, secret_key=secret_key, secure=False)
    engine = sqlalchemy.create_engine(database_url)
    token = requests.post(api_url + "dangnhap", json={"username": username, "password": password}).json()["token"]
    headers = {"Authorization": "Bearer " + token}
    done = 0
    for unit in units:
        dossiers = requests.post(api_url + "dongbodulieumotcua", json={"madonvi": unit}, headers=headers).json()
        for dossier in dossiers:
            stored = []
            for n, attachment in enumerate(dossier["file_dinh_kem"]):
                response = requests.get(attachment["url_file"])
                response.raise_for_status()
                data = response.content
                key = f"{unit}/{dossier['mahoso']}/{n}-{attachment['matailieu']}"
                content_type = response.headers.get("Content-Type", "application/octet-stream")
                minio.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type)
                stored.append((attachment, key, len(data), hashlib.sha256(data).hexdigest(), content_type))
            now = datetime.now(UTC)
            day, month, year = (int(part) for part in dossier["ngaynhan"].split("/"))
            with engine.begin() as db:
                ho_so_id = db.execute(
                    sqlalchemy.text(
                        "INSERT INTO ho_so (mahoso, madonvi, tentochuccanhan, ngaynhan, mathutuc, tenthutuc, "
                        "file_count, state, indexed_at, synced_at) "
                        "VALUES (:mahoso, :madonvi, :ten, :ngay, :ma, :tt, :n, 'synced', :now, :now) "
                        "RETURNING id"
                    ),
                    {
                        "mahoso": dossier["mahoso"],
                        "madonvi": unit,
                        "ten": dossier["tentochuccanhan"],
                        "ngay": date(year, month, day),
                        "ma": dossier["mathutuc"],
                        "tt": dossier["tenthutuc"],
                        "n": len(stored),
                        "now": now,
                    },
                ).scalar_one()
                for attachment, key, size, sha256, content_type in stored:
                    db.execute(
                        sqlalchemy.text(
                            "INSERT INTO tai_lieu (ho_so_id, mahoso, matailieu, tentailieu, ten_file, url_file, "
                            "object_key, size, sha256, content_type, content_type_mismatch, stored_at) "
                            "VALUES (:id, :mahoso, :ma, :ten, "
                            ":file, :url, :key, :size, :sha, :ct, false, :now)"
                        ),
                        {
                            "id": ho_so_id,
                            "mahoso": dossier["mahoso"],
                            "ma": attachment["matailieu"],
                            "ten": attachment["tentailieu"],
                            "file": attachment["ten_file"],
                            "url": attachment["url_file"],
                            "key": key,
                            "size": size,
                            "sha": sha256,
                            "ct": content_type,
                            "now": now,
                        },
                    )
            answer = requests.post(
                api_url + "capnhattrangthaidongbo",
                headers=headers,
                json={"madonvi": unit, "dataHoso": [{"mahoso": dossier["mahoso"]}]},
            ).json()
            if answer.get("status") != 200:
                raise RuntimeError(f"marking {dossier['mahoso']} synced failed: {answer}")
            done += 1
    engine.dispose()
    return time.monotonic() - started, done
