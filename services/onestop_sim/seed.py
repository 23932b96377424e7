"""Reproducible seed data: the same options give the same dossiers, files, names and sizes.

Everything is drawn from one `random.Random(seed)` in a fixed order. The tricky cases come at fixed
positions (dossier index modulo 20 or 50), so their share is exact and every small seed has one of each.
Poison dossiers come after the normal ones, on top of `--dossiers`: the j-th has the kind
`poison_kinds[j % len(poison_kinds)]` and goes to a unit chosen so that every run of `len(poison_kinds) * units`
poison dossiers gives each unit one of each kind. The kinds are in `poison.py`.
"""

from __future__ import annotations

import itertools
import random
import secrets
import unicodedata
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from urllib.parse import quote

from services.onestop_sim import content, vocab
from services.onestop_sim import poison as poison_module
from services.onestop_sim.attachments import SEPARATOR, make_stamp
from services.onestop_sim.state import Store, transaction

# Dossier index % 20 -> the trick it carries. Index % 20 == 19: no result yet; index % 50 == 25: no files.
TRICKS = {2: "nfd", 4: "spaces", 6: "slash", 8: "dots", 10: "long-name", 12: "same-matailieu", 14: "same-name",
          16: "mismatch"}
POISON_KINDS = poison_module.LEGACY_KINDS  # the default rotation of `--poison`
FORBIDDEN_URL = poison_module.FORBIDDEN_URL
FIRST_DAY, LAST_DAY = date(2020, 1, 1).toordinal(), date(2024, 12, 31).toordinal()
BATCH = 2000


@dataclass(frozen=True)
class SeedParams:
    seed: int = 1
    units: int = 2
    dossiers: int = 20
    files_per_dossier: int = 2
    file_size: tuple[int, int] = (20000, 200000)
    poison: int = 0
    poison_kinds: tuple[str, ...] = POISON_KINDS


def unit_codes(count: int) -> list[str]:
    numbers = list(vocab.FIRST_UNIT_NUMBERS) + [n for n in range(10, 100) if n not in vocab.FIRST_UNIT_NUMBERS]
    codes = [f"000.00.{n:02d}.H55" for n in numbers]
    codes += [f"000.{n // 90 + 1:02d}.{n % 90 + 10:02d}.H55" for n in range(max(0, count - len(codes)))]
    return codes[:count]


class Generator:
    """Makes dossier and file rows one at a time, in the order the seed draws them."""

    def __init__(self, params: SeedParams):
        self.params = params
        self.rng = random.Random(params.seed)
        self.units = unit_codes(params.units)
        self.next_seq: dict[tuple[str, str], int] = {}
        self.file_id = 0
        self.rotation = 0
        self._random = self.rng.random

    # random.choice / randint are pure Python and dominated a 200,000-dossier seed; these use random() only.
    def pick(self, options: tuple):
        return options[int(self._random() * len(options))]

    def between(self, low: int, high: int) -> int:
        return low + int(self._random() * (high - low + 1))

    def unit_for(self, index: int) -> str:
        """Each run of M dossiers covers the M units once, in a seeded rotation. A plain `index % M` would
        tie the tricky positions (index % 20) to the same unit every time."""
        count = len(self.units)
        if index % count == 0:
            self.rotation = self.between(0, count - 1)
        return self.units[(index + self.rotation) % count]

    def applicant(self) -> str:
        roll = self._random()
        if roll < 0.6:
            parts = (self.pick(vocab.FAMILY_NAMES), self.pick(vocab.MIDDLE_NAMES), self.pick(vocab.GIVEN_NAMES))
            return " ".join(parts).upper()  # written in capitals, like the document's "ĐOÀN THÚY HẢI"
        if roll < 0.9:
            return f"{self.pick(vocab.COMPANY_FORMS)} {self.pick(vocab.COMPANY_TRADES)} {self.pick(vocab.PLACES)}"
        return f"{self.pick(vocab.PUBLIC_BODIES)} {self.pick(vocab.PLACES)}"

    def mahoso(self, unit: str, day: date) -> str:
        key = (unit, f"{day.year % 100:02d}{day.month:02d}{day.day:02d}")
        seq = self.next_seq.get(key) or self.between(1, 30)
        self.next_seq[key] = seq + 1
        return f"{unit}-{key[1]}-{seq:04d}"

    def dossier(self, dossier_id: int, index: int, unit: str | None = None,
                poison: str | None = None) -> tuple[tuple, list[dict]]:
        params = self.params
        unit = unit or self.unit_for(index)
        day = date.fromordinal(self.between(FIRST_DAY, LAST_DAY))
        mahoso = self.mahoso(unit, day)
        applicant = self.applicant()
        mathutuc, tenthutuc = self.pick(vocab.PROCEDURES)
        trick = None if poison else TRICKS.get(index % 20)
        has_result = poison is not None or index % 20 != 19
        count = 0 if (poison is None and index % 50 == 25) else params.files_per_dossier
        files = self.files(dossier_id, day, count, has_result)
        if trick:
            applicant = apply_trick(trick, files, applicant, day, index)
        iso: str | None
        ngaynhan, iso = f"{day.day:02d}/{day.month:02d}/{day.year:04d}", day.isoformat()
        if poison == "bad-date":
            ngaynhan, iso = poison_module.BAD_DATE, None
        elif poison == "missing-file":
            files[0]["kind"] = "missing"
        elif poison == "forbidden-host":
            first = files[0]
            first["kind"] = "forbidden-host"
            first["url_override"] = f"{FORBIDDEN_URL}{first['stamp']}{SEPARATOR}{quote(first['ten_file'], safe='')}"
        row = (dossier_id, mahoso, unit, applicant, ngaynhan, iso, mathutuc, tenthutuc, int(has_result), poison)
        return row, files

    def files(self, dossier_id: int, received: date, count: int, has_result: bool) -> list[dict]:
        rng, (low, high) = self.rng, self.params.file_size
        inputs = count - 1 if has_result and count else count  # a result ends the list
        kinds = rng.sample(vocab.DOCUMENT_TYPES, min(inputs, len(vocab.DOCUMENT_TYPES))) if inputs else []
        kinds += [self.pick(vocab.DOCUMENT_TYPES) for _ in range(inputs - len(kinds))]
        if inputs < count:
            kinds.append((vocab.RESULT_CODE, vocab.RESULT_TITLE))
        plain_names = self._random() < 0.4  # like the document's file_dinh_kem.pdf, file_dinh_kem2.pdf
        finished = received + timedelta(days=self.between(0, 30))
        rows: list[dict] = []
        taken: set[str] = set()
        for n, (matailieu, tentailieu) in enumerate(kinds):
            if plain_names:
                name = f"file_dinh_kem{n + 1 if n else ''}.pdf"
            else:
                titles = vocab.RESULT_FILE_TITLES if matailieu == vocab.RESULT_CODE else vocab.FILE_TITLES
                name = f"{self.pick(titles)}.pdf"
                while name in taken:
                    name = f"{name[:-4]} ({len(taken) + 1}).pdf"
            taken.add(name)
            self.file_id += 1
            stamp = make_stamp(finished, self.file_id, self.params.seed)
            size = max(self.between(low, high), content.MIN_SIZE)
            rows.append({"id": self.file_id, "dossier_id": dossier_id, "matailieu": matailieu, "tentailieu": tentailieu,
                         "ten_file": name, "stamp": stamp, "size": size, "kind": "generated", "url_override": None})
        return rows


def apply_trick(trick: str, files: list[dict], applicant: str, day: date, index: int) -> str:
    """Makes one dossier awkward in one way; returns the (possibly changed) applicant name."""
    first = files[0] if files else None
    if trick == "nfd":
        for row in files:
            row["tentailieu"] = unicodedata.normalize("NFD", row["tentailieu"])
            row["ten_file"] = unicodedata.normalize("NFD", row["ten_file"])
        return unicodedata.normalize("NFD", applicant)
    if first is None:
        return applicant
    if trick == "spaces":
        first["ten_file"] = "  Tờ khai   có nhiều  khoảng trắng .pdf"
    elif trick == "slash":
        first["ten_file"] = f"Quyết định {index % 97 + 1:02d}/{day.year}.pdf"
    elif trick == "dots":
        first["ten_file"] = f"Biên bản. họp ngày {day:%d.%m.%Y}..v1.2.pdf"
    elif trick == "long-name":
        first["ten_file"] = (vocab.LONG_TITLE * 2)[:296] + ".pdf"
    elif trick == "same-matailieu" and len(files) > 1:
        first["matailieu"], first["tentailieu"] = files[-1]["matailieu"], files[-1]["tentailieu"]
    elif trick == "same-name" and len(files) > 1:
        files[1]["ten_file"] = first["ten_file"]
    elif trick == "mismatch":
        extension = vocab.MISMATCHED_EXTENSIONS[index // 20 % len(vocab.MISMATCHED_EXTENSIONS)]
        first["ten_file"] = first["ten_file"].rsplit(".", 1)[0] + extension
    return applicant


def poison_plan(params: SeedParams, units: list[str]):
    """(index, unit, kind) of each poison dossier. For a kind k (its position in the list), successive
    rounds of the list go to successive units, so each unit gets every kind once per `units` rounds."""
    kinds = params.poison_kinds
    for j in range(params.poison):
        position, rounds = j % len(kinds), j // len(kinds)
        yield params.dossiers + j, units[(position + rounds) % params.units], kinds[position]


def seed(store: Store, params: SeedParams, sizes: poison_module.PoisonSizes | None = None) -> None:
    """Fills an empty state file in one transaction: a crash half-way leaves it empty, not half-seeded."""
    gen = Generator(params)
    conn = store.conn
    normal = ((i, None, None) for i in range(params.dossiers))
    plan = itertools.chain(normal, poison_plan(params, gen.units))
    stored_later: list[tuple[int, str]] = []
    with transaction(conn):
        while batch := list(itertools.islice(plan, BATCH)):
            dossiers, files = [], []
            for index, unit, kind in batch:
                row, rows = gen.dossier(index + 1, index, unit, kind)
                dossiers.append(row)
                files.extend(rows)
                if kind is not None and kind not in POISON_KINDS:
                    stored_later.append((index + 1, kind))
            conn.executemany("INSERT INTO dossier (id, mahoso, madonvi, tentochuccanhan, ngaynhan, ngaynhan_iso, "
                             "mathutuc, tenthutuc, has_result, poison) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", dossiers)
            conn.executemany("INSERT INTO file (id, dossier_id, matailieu, tentailieu, ten_file, stamp, size, kind, "
                             "url_override) VALUES (:id, :dossier_id, :matailieu, :tentailieu, :ten_file, :stamp, "
                             ":size, :kind, :url_override)", files)
        # The newer kinds change rows that exist, through the code the run-time control uses as well.
        for dossier_id, kind in stored_later:
            poison_module.apply(conn, dossier_id, kind, sizes or poison_module.PoisonSizes(), params.seed)
        store.create_indexes(conn)
        store.set_meta("jwt_secret", secrets.token_hex(32), conn)
        store.set_meta("token_generation", 0, conn)
        store.set_meta("seeded_with", asdict(params), conn)
