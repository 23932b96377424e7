"""The one-stop simulator over real HTTP on loopback: the documented exchange, the designed APIs, the
attachments, every fault option, and its state across restarts. No mocks: each test starts the
simulator's own command line as a process (harness/services.py) and talks to it.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import time
import unicodedata
from urllib.parse import urlsplit

import psutil
import pytest
import requests

from harness.services import wait_for

UNIT = "000.00.17.H55"
USER = {"username": "admin_sotaichinh", "password": "1"}
WRONG_LOGIN = {"error": "Tên đăng nhập hoặc mật khẩu không đúng", "code": "400"}
UPDATED = {"status": 200, "message": "Cập nhật thành công"}


# -- helpers ------------------------------------------------------------------------------------------


def call(sim, name: str, body: dict | None = None, token: str | None = None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(sim.api_url + name, json=body, headers=headers, timeout=kwargs.pop("timeout", 30), **kwargs)


def login(sim) -> str:
    response = call(sim, "dangnhap", USER)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def sim_dossiers(sim, **params) -> list[dict]:
    return requests.get(sim.root + "/_sim/dossiers", params=params, timeout=60).json()


def stats(sim) -> dict:
    return requests.get(sim.root + "/_sim/stats", timeout=30).json()


def dossier_list(payload) -> list[dict]:
    """The dossiers of a sync response, whatever the outer shape (independent of dongbo's client)."""
    return payload if isinstance(payload, list) else payload["data"]


def files_of(dossier: dict) -> list[dict]:
    value = dossier.get("file_dinh_kem")
    if isinstance(value, str):
        value = json.loads(value) if value else None
    if isinstance(value, dict):
        value = value["data"]
    return value or []


def sync_codes(sim, token: str, body: dict) -> set[str]:
    response = call(sim, "dongbodulieumotcua", body, token)
    assert response.status_code == 200, response.text
    return {d["mahoso"] for d in dossier_list(response.json())}


def pending(dossiers: list[dict], unit: str) -> set[str]:
    """What the no-date call should return for a unit, according to the introspection listing."""
    return {
        d["mahoso"] for d in dossiers if d["madonvi"] == unit and d["has_result"] and d["files"] and not d["synced"]
    }


def raw_get(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    """(declared Content-Length, bytes actually received) — requests would raise on a short body."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request(method, parts.path, body=body, headers=headers or {})
    response = conn.getresponse()
    try:
        data = response.read()
    except http.client.IncompleteRead as exc:
        data = exc.partial
    finally:
        conn.close()
    return int(response.getheader("content-length")), data


def set_faults(sim, **changes) -> dict:
    response = requests.post(sim.root + "/_sim/faults", json=changes, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def generated_files(dossiers):
    return [f for d in dossiers for f in d["files"] if f["kind"] == "generated"]


# -- the documented API ------------------------------------------------------------------------------


def test_login_ok_and_wrong_credentials(simulator_factory):
    sim = simulator_factory()
    token = login(sim)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "HS256"
    for wrong in ({"username": "admin_sotaichinh", "password": "2"}, {"username": "khac", "password": "1"}):
        response = call(sim, "dangnhap", wrong)
        assert response.status_code == 400
        assert response.json() == WRONG_LOGIN
    assert stats(sim)["logins"] == 1


def test_credentials_come_from_the_environment(simulator_factory):
    sim = simulator_factory(env={"DONGBO_SIM_USERNAME": "stc_thainguyen", "DONGBO_SIM_PASSWORD": "mật-khẩu"})
    assert call(sim, "dangnhap", USER).json() == WRONG_LOGIN
    assert "token" in call(sim, "dangnhap", {"username": "stc_thainguyen", "password": "mật-khẩu"}).json()


def test_document_exchange_login_sync_mark(simulator_factory):
    sim = simulator_factory("--dossiers", "40")
    token = login(sim)
    listing = sim_dossiers(sim)
    first = sync_codes(sim, token, {"madonvi": UNIT})
    assert first == pending(listing, UNIT) and first
    chosen = sorted(first)[:2]
    response = call(
        sim, "capnhattrangthaidongbo", {"madonvi": UNIT, "dataHoso": [{"mahoso": c} for c in chosen]}, token
    )
    assert response.status_code == 200 and response.json() == UPDATED
    assert sync_codes(sim, token, {"madonvi": UNIT}) == first - set(chosen)
    marked = {d["mahoso"]: d for d in sim_dossiers(sim) if d["mahoso"] in chosen}
    assert all(d["synced"] and d["mark_count"] == 1 for d in marked.values())
    totals = stats(sim)
    assert (totals["mark_calls"], totals["marked_dossiers"], totals["synced"], totals["sync_calls"]) == (1, 2, 2, 2)
    # dataHoso as a JSON-encoded string (the document's table says String) works too.
    as_text = json.dumps([{"mahoso": chosen[0]}])
    assert call(sim, "capnhattrangthaidongbo", {"madonvi": UNIT, "dataHoso": as_text}, token).json() == UPDATED
    assert sim_dossiers(sim, mahoso=chosen[0])[0]["mark_count"] == 2


def test_dossiers_without_result_never_come_without_dates(simulator_factory):
    sim = simulator_factory("--dossiers", "60")
    token = login(sim)
    listing = sim_dossiers(sim)
    no_result = {d["mahoso"] for d in listing if not d["has_result"]}
    no_files = {d["mahoso"] for d in listing if not d["files"]}
    assert no_result and no_files
    returned = set().union(*(sync_codes(sim, token, {"madonvi": unit}) for unit in {d["madonvi"] for d in listing}))
    assert not returned & (no_result | no_files)
    assert len(returned) == stats(sim)["pending"]


def test_date_range_filters_on_ngaynhan_synced_or_not(simulator_factory):
    sim = simulator_factory("--dossiers", "60")
    token = login(sim)
    listing = [d for d in sim_dossiers(sim) if d["madonvi"] == UNIT]
    iso = lambda text: "-".join(reversed(text.split("/")))  # noqa: E731
    days = sorted(iso(d["ngaynhan"]) for d in listing)
    low, high = days[len(days) // 4], days[3 * len(days) // 4]
    expected = {d["mahoso"] for d in listing if low <= iso(d["ngaynhan"]) <= high}
    as_vn = lambda day: "/".join(reversed(day.split("-")))  # noqa: E731
    body = {"madonvi": UNIT, "tungay": as_vn(low), "denngay": as_vn(high)}
    assert sync_codes(sim, token, body) == expected
    # A backfill returns synced dossiers too.
    marked = sorted(expected)[0]
    assert (
        call(sim, "capnhattrangthaidongbo", {"madonvi": UNIT, "dataHoso": [{"mahoso": marked}]}, token).json()
        == UPDATED
    )
    assert sync_codes(sim, token, body) == expected
    assert marked not in sync_codes(sim, token, {"madonvi": UNIT})
    # Bounds are inclusive: a one-day window holds that day's dossiers.
    one_day = {d["mahoso"] for d in listing if iso(d["ngaynhan"]) == low}
    assert sync_codes(sim, token, {"madonvi": UNIT, "tungay": as_vn(low), "denngay": as_vn(low)}) == one_day
    for bad in ({"tungay": "2020-01-01"}, {"tungay": "31/02/2020"}, {"tungay": "01/02/2021", "denngay": "01/01/2021"}):
        response = call(sim, "dongbodulieumotcua", {"madonvi": UNIT, **bad}, token)
        assert response.status_code == 400
        assert set(response.json()) == {"error", "code"} and response.json()["code"] == "400"


def test_bad_tokens_get_401_in_the_error_shape(simulator_factory):
    sim = simulator_factory("--token-lifetime", "1")
    token = login(sim)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (None, "not-a-jwt", forged):
        response = call(sim, "dongbodulieumotcua", {"madonvi": UNIT}, bad)
        assert response.status_code == 401
        assert response.json() == {"error": "Token không hợp lệ hoặc đã hết hạn", "code": "401"}

    def expired():
        response = call(sim, "dongbodulieumotcua", {"madonvi": UNIT}, token)
        return response.status_code == 401 and response.json()["code"] == "401"

    wait_for(expired, timeout=5, interval=0.2, what="the 1-second token to expire")


def test_expire_tokens_refuses_every_earlier_token(simulator_factory):
    sim = simulator_factory()
    token = login(sim)
    assert call(sim, "dongbodulieumotcua", {"madonvi": UNIT}, token).status_code == 200
    assert requests.post(sim.root + "/_sim/expire-tokens", timeout=10).json()["ok"] is True
    assert call(sim, "dongbodulieumotcua", {"madonvi": UNIT}, token).status_code == 401
    assert call(sim, "dongbodulieumotcua", {"madonvi": UNIT}, login(sim)).status_code == 200


def test_errors_as_200(simulator_factory):
    sim = simulator_factory("--errors-as-200")
    response = call(sim, "dangnhap", {"username": "x", "password": "y"})
    assert response.status_code == 200 and response.json() == WRONG_LOGIN
    response = call(sim, "dongbodulieumotcua", {"madonvi": UNIT}, "expired.or.wrong")
    assert response.status_code == 200 and response.json() == {
        "error": "Token không hợp lệ hoặc đã hết hạn",
        "code": "401",
    }


# -- response shapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["array", "data", "files-string", "files-object", "mixed"])
def test_shapes_keep_every_dossier_and_file(simulator_factory, shape):
    sim = simulator_factory("--dossiers", "60", "--shape", shape)
    token = login(sim)
    listing = sim_dossiers(sim)
    expected = {
        d["mahoso"]: sorted(f["url_file"] for f in d["files"])
        for d in listing
        if d["madonvi"] == UNIT and d["has_result"] and d["files"]
    }
    outer_forms = set()
    for _ in range(3):  # `mixed` rotates the outer form per response
        payload = call(sim, "dongbodulieumotcua", {"madonvi": UNIT}, token).json()
        outer_forms.add(
            type(payload).__name__ + ("+status" if isinstance(payload, dict) and "status" in payload else "")
        )
        got = {d["mahoso"]: sorted(f["url_file"] for f in files_of(d)) for d in dossier_list(payload)}
        assert got == expected
        forms = {type(d["file_dinh_kem"]).__name__ for d in dossier_list(payload)}
        assert (
            forms
            == {
                "array": {"list"},
                "data": {"list"},
                "files-string": {"str"},
                "files-object": {"dict"},
                "mixed": {"list", "str", "dict"},
            }[shape]
        )
    assert outer_forms == {"array": {"list"}, "data": {"dict"}, "mixed": {"list", "dict", "dict+status"}}.get(
        shape, {"list"}
    )
    # A date range also returns dossiers without files: still valid, with an empty (or absent) file list.
    by_code = {}
    for unit in {d["madonvi"] for d in listing}:
        window = {"madonvi": unit, "tungay": "01/01/2000", "denngay": "31/12/2030"}
        by_code.update({d["mahoso"]: d for d in dossier_list(call(sim, "dongbodulieumotcua", window, token).json())})
    assert set(by_code) == {d["mahoso"] for d in listing}
    assert {code for code, d in by_code.items() if files_of(d) == []} == {
        d["mahoso"] for d in listing if not d["files"]
    }
    # Empty results are valid JSON of the same outer shape.
    empty = call(sim, "dongbodulieumotcua", {"madonvi": "000.00.99.H99"}, token).json()
    assert dossier_list(empty) == []
    if shape == "mixed":
        assert all({"trangthai", "ghichu"} <= set(d) for d in by_code.values())


# -- attachments -------------------------------------------------------------------------------------


def test_files_match_listing_and_are_valid_pdfs(simulator_factory):
    sim = simulator_factory("--dossiers", "20", "--file-size", "2000-150000")
    listing = sim_dossiers(sim)
    files = generated_files(listing)
    for f in files:
        response = requests.get(f["url_file"], timeout=30)
        assert response.status_code == 200, f["url_file"]
        body = response.content
        assert len(body) == f["size"] == int(response.headers["content-length"])
        assert hashlib.sha256(body).hexdigest() == f["sha256"]
        assert body.startswith(b"%PDF-") and body.rstrip().endswith(b"%%EOF")
        startxref = int(body.rsplit(b"startxref", 1)[1].split()[0])
        assert body[startxref : startxref + 4] == b"xref"
    again = requests.get(files[0]["url_file"], timeout=30)
    assert hashlib.sha256(again.content).hexdigest() == files[0]["sha256"]
    head = requests.head(files[0]["url_file"], timeout=30)
    assert head.status_code == 200 and int(head.headers["content-length"]) == files[0]["size"] and not head.content
    assert head.headers["etag"] == again.headers["etag"]
    counts = {f["url_file"]: f["fetch_count"] for f in generated_files(sim_dossiers(sim))}
    assert counts[files[0]["url_file"]] == 2 and all(counts[f["url_file"]] >= 1 for f in files)
    assert stats(sim)["file_fetches"] == len(files) + 1
    # Content-Type follows the name, so a .docx full of PDF bytes is served as a .docx.
    mismatched = [f for f in files if not f["ten_file"].endswith(".pdf")]
    assert mismatched
    response = requests.get(mismatched[0]["url_file"], timeout=30)
    assert "pdf" not in response.headers["content-type"] and response.content.startswith(b"%PDF-")
    # The separator may arrive percent-encoded; a wrong name or unit is not found.
    url = files[0]["url_file"]
    assert requests.get(url.replace("!~!", "%21%7E%21"), timeout=30).status_code == 200
    assert requests.get(url + "x", timeout=30).status_code == 404
    unit = urlsplit(url).path.split("/")[5]
    other = "000.00.12.H55" if unit == UNIT else UNIT
    assert requests.get(url.replace(f"/{unit}/", f"/{other}/"), timeout=30).status_code == 404


def test_seed_is_reproducible_and_has_the_tricky_cases(simulator_factory):
    args = ("--dossiers", "40", "--seed", "7", "--file-size", "1000-5000")
    a, b = simulator_factory(*args), simulator_factory(*args)

    def strip(ds):
        return [
            (d["mahoso"], d["tentochuccanhan"], [(f["ten_file"], f["size"], f["sha256"]) for f in d["files"]])
            for d in ds
        ]

    listing = sim_dossiers(a)
    assert strip(listing) == strip(sim_dossiers(b))
    other = simulator_factory("--dossiers", "40", "--seed", "8", "--file-size", "1000-5000")
    assert strip(sim_dossiers(other)) != strip(listing)
    assert {d["madonvi"] for d in listing} == {UNIT, "000.00.12.H55"}
    names = [f["ten_file"] for d in listing for f in d["files"]]
    assert any(unicodedata.normalize("NFC", n) != n for n in names)  # NFD
    assert any("/" in n for n in names) and any(len(n) == 300 for n in names) and any("  " in n for n in names)
    assert any(len({f["matailieu"] for f in d["files"]}) < len(d["files"]) for d in listing)
    twins = [d for d in listing if len({f["ten_file"] for f in d["files"]}) < len(d["files"])]
    assert twins and twins[0]["files"][0]["sha256"] != twins[0]["files"][1]["sha256"]
    for d in listing:
        assert d["mahoso"].startswith(d["madonvi"] + "-") and len(d["mahoso"].rsplit("-", 1)[1]) == 4
    # Files with awkward names are served at their url_file too.
    for f in generated_files(listing):
        if (
            "/" in f["ten_file"]
            or len(f["ten_file"]) == 300
            or unicodedata.normalize("NFC", f["ten_file"]) != f["ten_file"]
        ):
            assert requests.get(f["url_file"], timeout=30).status_code == 200


# -- faults ------------------------------------------------------------------------------------------


def test_truncate_rate_sends_less_than_content_length(simulator_factory):
    sim = simulator_factory("--dossiers", "4", "--truncate-rate", "1", "--file-size", "100000")
    f = generated_files(sim_dossiers(sim))[0]
    declared, data = raw_get(f["url_file"])
    assert declared == f["size"] and 0 < len(data) < declared
    token = login(sim)
    body = json.dumps({"madonvi": UNIT}).encode()
    declared, data = raw_get(
        sim.api_url + "dongbodulieumotcua",
        "POST",
        body,
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert 0 < len(data) < declared


def test_file_bandwidth_paces_downloads(simulator_factory):
    sim = simulator_factory(
        "--dossiers", "1", "--files-per-dossier", "1", "--file-size", "60000", "--file-bandwidth", "100000"
    )
    f = generated_files(sim_dossiers(sim))[0]
    started = time.monotonic()
    body = requests.get(f["url_file"], timeout=30).content
    elapsed = time.monotonic() - started
    assert len(body) == f["size"] and elapsed >= f["size"] / 100000


def test_error_rate_all_answers_500_without_effect(simulator_factory):
    sim = simulator_factory("--error-rate", "all=1")
    response = call(sim, "dangnhap", USER)
    assert response.status_code == 500 and response.json()["code"] == "500"
    f = generated_files(sim_dossiers(sim))[0]
    assert requests.get(f["url_file"], timeout=30).status_code == 500
    assert call(sim, "capnhattrangthaidongbo", {"madonvi": UNIT, "dataHoso": []}, "x").json()["status"] == 500
    totals = stats(sim)
    assert totals["logins"] == 0 and totals["file_fetches"] == 0
    assert requests.get(sim.root + "/_sim/health", timeout=10).status_code == 200


def test_runtime_faults_change_behaviour(simulator_factory):
    sim = simulator_factory("--error-status", "503")
    token = login(sim)
    f = generated_files(sim_dossiers(sim))[0]
    assert set_faults(sim, error_rate={"files": 1})["error_rate"] == {"files": 1.0}
    assert requests.get(f["url_file"], timeout=30).status_code == 503
    assert call(sim, "dongbodulieumotcua", {"madonvi": UNIT}, token).status_code == 200
    set_faults(sim, error_rate={"files": 0}, shape="data", latency_ms=300)
    assert requests.get(sim.root + "/_sim/faults", timeout=10).json()["shape"] == "data"
    started = time.monotonic()
    assert requests.get(f["url_file"], timeout=30).status_code == 200
    assert time.monotonic() - started >= 0.3
    assert isinstance(call(sim, "dongbodulieumotcua", {"madonvi": UNIT}, token).json(), dict)
    # The mark is recorded, yet the answer is 500: a retry marks again, harmlessly.
    set_faults(sim, reset=True, mark_fail_after_record_rate=1)
    code = sim_dossiers(sim)[0]["mahoso"]
    response = call(sim, "capnhattrangthaidongbo", {"madonvi": UNIT, "dataHoso": [{"mahoso": code}]}, token)
    assert response.status_code == 500 and response.json()["status"] == 500
    assert sim_dossiers(sim, mahoso=code)[0]["mark_count"] == 1
    set_faults(sim, token_lifetime=1, hang_rate=1, hang_seconds=2, mark_fail_after_record_rate=0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        call(sim, "dangnhap", USER, timeout=0.5)
    for bad in ({"nonsense": 1}, {"error_rate": {"nowhere": 1}}, {"truncate_rate": 2}, {"shape": "xml"}):
        response = requests.post(sim.root + "/_sim/faults", json=bad, timeout=10)
        assert response.status_code == 400 and "error" in response.json()


def test_poison_dossiers(simulator_factory):
    sim = simulator_factory("--dossiers", "6", "--poison", "3")
    listing = sim_dossiers(sim)
    poison = {d["poison"]: d for d in listing if d["poison"]}
    assert set(poison) == {"bad-date", "missing-file", "forbidden-host"}
    assert sum(1 for d in listing if d["poison"] is None) == 6
    assert poison["bad-date"]["ngaynhan"] == "32/13/2020"
    missing = poison["missing-file"]["files"][0]
    assert requests.get(missing["url_file"], timeout=30).status_code == 404
    assert urlsplit(poison["forbidden-host"]["files"][0]["url_file"]).hostname == "169.254.169.254"
    token = login(sim)
    returned = set()
    for unit in {d["madonvi"] for d in listing}:
        returned |= sync_codes(sim, token, {"madonvi": unit})
    assert {d["mahoso"] for d in poison.values()} <= returned


# -- state across restarts ---------------------------------------------------------------------------


def test_restart_keeps_marks_and_counts(simulator_factory, tmp_path):
    first = simulator_factory("--dossiers", "10", state_dir=str(tmp_path))
    token = login(first)
    code = sorted(sync_codes(first, token, {"madonvi": UNIT}))[0]
    call(first, "capnhattrangthaidongbo", {"madonvi": UNIT, "dataHoso": [{"mahoso": code}]}, token)
    before = sim_dossiers(first)
    first.stop()
    second = simulator_factory("--dossiers", "99", "--seed", "5", state_dir=str(tmp_path))
    after = sim_dossiers(second)
    assert [(d["mahoso"], d["synced"], d["mark_count"]) for d in after] == [
        (d["mahoso"], d["synced"], d["mark_count"]) for d in before
    ]
    assert stats(second)["logins"] == 1 and stats(second)["mark_calls"] == 1
    assert code not in sync_codes(second, token, {"madonvi": UNIT})  # the token survives the restart too


# -- APIs 5-8 (dongbo's design) ----------------------------------------------------------------------


def test_designed_file_apis(simulator_factory):
    sim = simulator_factory("--dossiers", "6")
    token = login(sim)
    catalog = call(sim, "danhmucloaitailieu", {}, token).json()
    assert {"maloaitailieu": "FILE_TRA_KET_QUA", "tenloaitailieu": "File trả kết quả"} in catalog
    assert call(sim, "danhmucloaitailieu", None, token).json() == catalog
    dossier = next(d for d in sim_dossiers(sim) if d["madonvi"] == UNIT and d["has_result"] and len(d["files"]) == 2)
    code, target = dossier["mahoso"], dossier["files"][-1]

    body = {
        "madonvi": UNIT,
        "mahoso": code,
        "dataFile": [{"matailieu": target["matailieu"], "url_file": target["url_file"]}],
    }
    assert call(sim, "capnhattrangthaidongbofile", body, token).json() == UPDATED
    marked = sim_dossiers(sim, mahoso=code)[0]["files"][-1]
    assert marked["synced"] and marked["mark_count"] == 1

    call(sim, "capnhattrangthaidongbo", {"madonvi": UNIT, "dataHoso": [{"mahoso": code}]}, token)
    new_bytes = "Nội dung mới".encode() * 1000
    replace = {
        "madonvi": UNIT,
        "mahoso": code,
        "matailieu": target["matailieu"],
        "ten_file": "Kết quả mới.pdf",
        "noidung_base64": base64.b64encode(new_bytes).decode(),
    }
    answer = call(sim, "capnhatfiletheoloaitailieu", replace, token).json()
    assert answer["status"] == 200 and answer["message"] == UPDATED["message"]
    assert requests.get(answer["url_file"], timeout=30).content == new_bytes
    after = sim_dossiers(sim, mahoso=code)[0]
    assert not after["synced"] and code in sync_codes(sim, token, {"madonvi": UNIT})  # changed: offered again
    assert [f["ten_file"] for f in after["files"] if f["matailieu"] == target["matailieu"]] == ["Kết quả mới.pdf"]
    assert after["files"][-1]["sha256"] == hashlib.sha256(new_bytes).hexdigest()

    delete = {"madonvi": UNIT, "mahoso": code, "matailieu": target["matailieu"]}
    assert call(sim, "xoafiletheoloaitailieu", delete, token).json() == UPDATED
    assert requests.get(answer["url_file"], timeout=30).status_code == 404
    response = call(sim, "xoafiletheoloaitailieu", delete, token)
    assert response.status_code == 404 and response.json()["status"] == 404
    response = call(sim, "capnhattrangthaidongbofile", {**body, "mahoso": "000.00.17.H55-000000-0000"}, token)
    assert response.status_code == 404 and response.json() == {"status": 404, "message": "Không tìm thấy hồ sơ"}
    response = call(sim, "capnhatfiletheoloaitailieu", {**replace, "noidung_base64": "***"}, token)
    assert response.status_code == 400 and response.json()["status"] == 400
    assert call(sim, "xoafiletheoloaitailieu", delete, None).json()["code"] == "401"


def test_invalid_bodies_get_400_in_the_documented_shape(simulator_factory):
    sim = simulator_factory()
    token = login(sim)
    error_shaped = ["dangnhap", "dongbodulieumotcua"]
    status_shaped = [
        "capnhattrangthaidongbo",
        "capnhattrangthaidongbofile",
        "capnhatfiletheoloaitailieu",
        "xoafiletheoloaitailieu",
    ]
    common = [b"", b"{", b"[]", b"null", b'"text"', b'{"madonvi": 5, "username": ["a"], "password": {}, "mahoso": 1}']
    specific = {
        "capnhattrangthaidongbo": [
            b'{"madonvi": "x", "dataHoso": "not json"}',
            b'{"madonvi": "x", "dataHoso": []}',
            b'{"madonvi": "x", "dataHoso": [{"mahoso": 7}]}',
        ],
        "dongbodulieumotcua": [b'{"madonvi": ""}', b'{"madonvi": "x", "tungay": 20200101}', b'{"madonvi": "\\ud800"}'],
        "dangnhap": [b'{"username": "\\udfff", "password": "1"}'],
        "capnhattrangthaidongbofile": [b'{"madonvi": "x", "mahoso": "y", "dataFile": []}'],
    }
    for name in error_shaped + status_shaped:
        for body in common + specific.get(name, []):
            response = requests.post(
                sim.api_url + name,
                data=body,
                timeout=10,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            assert response.status_code == 400, (name, body, response.text)
            expected_keys = {"error", "code"} if name in error_shaped else {"status", "message"}
            assert set(response.json()) == expected_keys, (name, body, response.text)
    assert requests.get(sim.api_url + "dangnhap", timeout=10).status_code == 405
    assert requests.post(sim.api_url + "khongtontai", json={}, timeout=10).json()["code"] == "404"
    schema = requests.get(sim.root + "/openapi.json", timeout=10).json()
    paths = set(schema["paths"])
    for name in error_shaped + status_shaped + ["danhmucloaitailieu"]:
        assert "/thainguyen/general/api/" + name in paths
    assert not any(p.startswith("/_sim") for p in paths)
    assert not any("422" in op["responses"] for ops in schema["paths"].values() for op in ops.values())
    assert requests.get(sim.root + "/docs", timeout=10).status_code == 200


# -- memory ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sync_of_200000_dossiers_streams_in_bounded_memory(simulator_factory):
    sim = simulator_factory("--units", "1", "--dossiers", "200000", "--files-per-dossier", "1", "--file-size", "1024")
    process = psutil.Process(sim.process.pid)
    expected = stats(sim)["pending"]
    token = login(sim)
    peak, count, tail, received = 0, 0, b"", 0
    marker = b'"mahoso"'
    with requests.post(
        sim.api_url + "dongbodulieumotcua",
        json={"madonvi": UNIT},
        timeout=120,
        stream=True,
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        assert response.status_code == 200
        for number, chunk in enumerate(response.iter_content(256 * 1024)):
            window = tail + chunk
            count += window.count(marker)  # the tail is shorter than the marker: no match is counted twice
            tail = window[-(len(marker) - 1) :]
            received += len(chunk)
            if number % 8 == 0:
                peak = max(peak, process.memory_info().rss)
    peak = max(peak, process.memory_info().rss)
    assert count == expected > 180_000
    assert received > 50 * 1024 * 1024
    assert peak < 200 * 1024 * 1024, f"simulator RSS peaked at {peak / 2**20:.0f} MiB"
