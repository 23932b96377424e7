"""The simulator's poison kinds (services/onestop_sim/poison.py) as served on the wire, its run-time poison
control, and the page counts of its multi-page PDFs. Nothing here decompresses a bomb: only headers and
sizes are looked at."""

from __future__ import annotations

import io
from collections import Counter

import requests
from pypdf import PdfReader

from harness.pipeline import sim_dossiers
from services.onestop_sim.poison import KINDS

LOGIN = {"username": "admin_sotaichinh", "password": "1"}


def sync(sim, unit: str) -> bytes:
    token = requests.post(sim.api_url + "dangnhap", json=LOGIN, timeout=10).json()["token"]
    response = requests.post(sim.api_url + "dongbodulieumotcua", json={"madonvi": unit},
                             headers={"Authorization": f"Bearer {token}"}, timeout=60)
    response.raise_for_status()
    return response.content


def test_every_kind_in_every_unit_as_served(simulator_factory):
    sim = simulator_factory("--units", "2", "--dossiers", "2", "--poison", str(2 * len(KINDS)), "--poison-kinds",
                            "all", "--poison-item-bytes", "30000", "--poison-files", "7", "--poison-depth", "3000")
    listing = sim_dossiers(sim)
    units = sorted({d["madonvi"] for d in listing})
    assert Counter((d["madonvi"], d["poison"]) for d in listing if d["poison"]) == Counter(
        {(unit, kind): 1 for unit in units for kind in KINDS})
    body = sync(sim, units[0])
    assert body.count(b"\\u0000") == 2  # a NUL in one mahoso, and one in one madonvi
    assert b"[" * 3000 + b"]" * 3000 in body  # served as text, byte for byte
    assert len(body) > 20_000_000  # the huge field
    mine = {d["poison"]: d for d in listing if d["madonvi"] == units[0] and d["poison"]}
    assert "\x00" in mine["nul-mahoso"]["mahoso"]
    assert len(mine["too-many-files"]["files"]) == 7
    assert len(mine["long-field"]["tentochuccanhan"]) == 5000

    def first(kind: str) -> requests.Response:
        return requests.get(mine[kind]["files"][0]["url_file"], allow_redirects=False, stream=True, timeout=5)

    with first("gzip-bomb") as bomb:
        assert bomb.status_code == 200 and bomb.headers["content-encoding"] == "gzip"
    with first("redirect-bomb") as moved:
        assert moved.status_code == 302 and moved.headers["content-encoding"] == "gzip"
        assert mine["redirect-bomb"]["files"][0]["url_file"].endswith(moved.raw.headers["location"])
    with first("redirect-forbidden") as moved:
        assert moved.status_code == 302 and moved.headers["location"].startswith("http://169.254.169.254/")
    with first("drip") as drip:
        assert drip.status_code == 200 and int(drip.headers["content-length"]) == mine["drip"]["files"][0]["size"]
        assert drip.raw.read(1) == b"%"


def test_poison_and_heal_at_run_time(simulator_factory):
    sim = simulator_factory("--units", "1", "--dossiers", "1")
    [dossier] = sim_dossiers(sim)
    control = f"{sim.root}/_sim/dossiers/{dossier['mahoso']}/poison"
    answer = requests.post(control, json={"kind": "nul-mahoso"}, timeout=10).json()
    assert answer["mahoso"] == dossier["mahoso"][:-4] + "\x00" + dossier["mahoso"][-4:]
    assert b"\\u0000" in sync(sim, dossier["madonvi"])
    healed = requests.post(f"{sim.root}/_sim/dossiers/{answer['mahoso']}/poison", json={"kind": None}, timeout=10)
    assert healed.json()["mahoso"] == dossier["mahoso"]
    assert requests.post(control, json={"kind": "deep"}, timeout=10).ok
    assert b"[[[[[[[[" in sync(sim, dossier["madonvi"])
    assert requests.post(control, json={"kind": None}, timeout=10).ok
    assert b"[[[[" not in sync(sim, dossier["madonvi"])
    assert requests.post(control, json={"kind": "nonsense"}, timeout=10).status_code == 400


def test_generated_pdfs_have_the_page_count_the_listing_shows(simulator_factory):
    sim = simulator_factory("--units", "1", "--dossiers", "12", "--file-size", "1000-20000")
    counts = []
    for dossier in sim_dossiers(sim):
        for file in dossier["files"]:
            data = requests.get(file["url_file"], timeout=10).content
            assert len(PdfReader(io.BytesIO(data)).pages) == file["pages"]
            counts.append(file["pages"])
    assert len(set(counts)) > 3 and max(counts) <= 12
