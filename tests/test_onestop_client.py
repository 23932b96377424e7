"""The one-stop client against the real simulator over loopback: no mocks."""

from __future__ import annotations

import logging
import threading
import time
from datetime import date, datetime

import pytest
import requests

from shared.errors import (
    ConfigError,
    LoginFailed,
    MarkSyncedRejected,
    OneStopError,
    OneStopRefused,
    OneStopUnavailable,
    ResponseTooLarge,
    TransientError,
)
from shared.onestop import DocumentType, Dossier, InvalidDossier, OneStopClient
from shared.onestop.retry import RetryPolicy
from shared.onestop.transport import retry_after
from shared.settings import load_settings

USER, PASSWORD = "admin_sotaichinh", "1"
SEED = ("--seed", "7", "--units", "2", "--dossiers", "60", "--files-per-dossier", "2", "--file-size", "1000")


@pytest.fixture
def make_client():
    """Clients with quick retries and timeouts, closed after the test."""
    made: list[OneStopClient] = []

    def make(sim, password: str = PASSWORD, **options) -> OneStopClient:
        settings = {"retries": 2, "backoff": 0.01, "connect_timeout": 2.0, "read_timeout": 10.0, **options}
        client = OneStopClient(sim.api_url, USER, password, **settings)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def sim_dossiers(sim, **params) -> list[dict]:
    return requests.get(sim.root + "/_sim/dossiers", params=params, timeout=10).json()


def stats(sim) -> dict:
    return requests.get(sim.root + "/_sim/stats", timeout=10).json()


def set_faults(sim, **faults) -> None:
    response = requests.post(sim.root + "/_sim/faults", json=faults, timeout=10)
    assert response.status_code == 200, response.text


def expire_tokens(sim) -> None:
    requests.post(sim.root + "/_sim/expire-tokens", timeout=10).raise_for_status()


def pending(sim, madonvi: str) -> set[str]:
    """What the no-date sync should return: dossiers with a result and files, not yet synced."""
    return {
        d["mahoso"] for d in sim_dossiers(sim, madonvi=madonvi) if d["has_result"] and d["files"] and not d["synced"]
    }


def units_of(sim) -> list[str]:
    return sorted({d["madonvi"] for d in sim_dossiers(sim)})


# -- login ------------------------------------------------------------------------------------------


def test_login_then_fetch_every_pending_dossier(simulator_factory, make_client):
    sim = simulator_factory(*SEED)
    client = make_client(sim)
    client.login()
    assert stats(sim)["logins"] == 1
    for unit in units_of(sim):
        got = list(client.fetch_dossiers(unit))
        assert all(isinstance(d, Dossier) for d in got)
        assert {d.mahoso for d in got} == pending(sim, unit)
        assert all(d.madonvi == unit and d.file_dinh_kem for d in got)
    expected = {d["mahoso"]: d for d in sim_dossiers(sim)}
    one = got[0]
    files = expected[one.mahoso]["files"]
    assert [f.url_file for f in one.file_dinh_kem] == [f["url_file"] for f in files]
    assert one.ngaynhan == datetime.strptime(expected[one.mahoso]["ngaynhan"], "%d/%m/%Y").date()
    assert stats(sim)["logins"] == 1  # the token was reused


@pytest.mark.parametrize("as_200", [False, True], ids=["http-400", "errors-as-200"])
def test_wrong_credentials_fail_at_once(simulator_factory, make_client, as_200):
    sim = simulator_factory(*SEED, *(["--errors-as-200"] if as_200 else []))
    client = make_client(sim, password="wrong", retries=4, backoff=2.0)
    unit = units_of(sim)[0]
    started = time.monotonic()
    with pytest.raises(LoginFailed, match="Tên đăng nhập hoặc mật khẩu không đúng"):
        client.login()
    with pytest.raises(LoginFailed):
        next(client.fetch_dossiers(unit))
    assert time.monotonic() - started < 3  # never retried (four retries would wait 15 s or more)
    assert stats(sim)["logins"] == 0 and stats(sim)["sync_calls"] == 0


# -- sync -------------------------------------------------------------------------------------------


def test_every_shape_gives_the_same_dossiers(simulator_factory, make_client):
    sim = simulator_factory(*SEED)
    client = make_client(sim)
    unit = units_of(sim)[0]
    reference = list(client.fetch_dossiers(unit))
    assert reference
    for shape in ("data", "files-string", "files-object", "mixed"):
        set_faults(sim, shape=shape)
        for _ in range(3 if shape == "mixed" else 1):  # mixed rotates the outer form per response
            assert list(client.fetch_dossiers(unit)) == reference, shape


def test_a_date_range_returns_every_dossier_received_in_it(simulator_factory, make_client):
    sim = simulator_factory(*SEED)
    client = make_client(sim)
    unit = units_of(sim)[0]
    start, end = date(2021, 1, 1), date(2023, 6, 30)
    expected = {
        d["mahoso"]
        for d in sim_dossiers(sim, madonvi=unit)
        if start <= datetime.strptime(d["ngaynhan"], "%d/%m/%Y").date() <= end
    }
    got = list(client.fetch_dossiers(unit, start, end))
    assert {d.mahoso for d in got} == expected
    assert expected and all(start <= d.ngaynhan <= end for d in got)
    # One date alone leaves the other side open (docs/onestop-api.md).
    since = {
        d["mahoso"]
        for d in sim_dossiers(sim, madonvi=unit)
        if datetime.strptime(d["ngaynhan"], "%d/%m/%Y").date() >= start
    }
    assert {d.mahoso for d in client.fetch_dossiers(unit, tungay=start)} == since
    with pytest.raises(ValueError):
        client.fetch_dossiers(unit, end, start)  # raised at the call, not at the first next()


def test_poison_dossiers_come_as_invalid_among_good_ones(simulator_factory, make_client):
    sim = simulator_factory(*SEED, "--poison", "6")
    client = make_client(sim)
    unit = units_of(sim)[0]
    got = list(client.fetch_dossiers(unit))
    invalid = [d for d in got if isinstance(d, InvalidDossier)]
    assert invalid and all("ngaynhan" in d.error and d.madonvi == unit for d in invalid)
    bad_dates = {d["mahoso"] for d in sim_dossiers(sim, madonvi=unit) if d["poison"] == "bad-date"}
    assert {d.mahoso for d in invalid} == bad_dates
    assert {d.mahoso for d in got} == pending(sim, unit)


def test_a_response_over_the_limit(simulator_factory, make_client):
    sim = simulator_factory(*SEED)
    client = make_client(sim, max_response_bytes=2000)
    with pytest.raises(ResponseTooLarge):
        list(client.fetch_dossiers(units_of(sim)[0]))


def test_stopping_early_frees_the_connection(simulator_factory, make_client):
    sim = simulator_factory(*SEED)
    client = make_client(sim)
    unit = units_of(sim)[0]
    for _ in range(5):
        items = client.fetch_dossiers(unit)
        next(items)
        items.close()
    assert len(list(client.fetch_dossiers(unit))) == len(pending(sim, unit))


# -- mark synced ------------------------------------------------------------------------------------


def test_marked_dossiers_are_not_returned_again(simulator_factory, make_client):
    sim = simulator_factory(*SEED)
    client = make_client(sim)
    unit = units_of(sim)[0]
    codes = sorted(pending(sim, unit))
    chosen = codes[:5]
    calls = stats(sim)["mark_calls"]
    client.mark_synced(unit, chosen, batch_size=2)
    assert stats(sim)["mark_calls"] == calls + 3  # 2 + 2 + 1
    assert {d.mahoso for d in client.fetch_dossiers(unit)} == set(codes) - set(chosen)
    client.mark_synced(unit, chosen + chosen[:1])  # twice is harmless; a repeated code is sent once
    marks = {d["mahoso"]: d["mark_count"] for d in sim_dossiers(sim, madonvi=unit)}
    assert all(marks[code] == 2 for code in chosen)
    client.mark_synced(unit, [])  # nothing to do, no call
    assert stats(sim)["mark_calls"] == calls + 4


def test_a_mark_that_fails_after_recording_can_be_repeated(simulator_factory, make_client):
    sim = simulator_factory(*SEED, "--mark-fail-after-record-rate", "1")
    client = make_client(sim, retries=1)
    unit = units_of(sim)[0]
    code = sorted(pending(sim, unit))[0]
    with pytest.raises(OneStopUnavailable) as caught:
        client.mark_synced(unit, [code])
    assert isinstance(caught.value, TransientError)
    set_faults(sim, mark_fail_after_record_rate=0)
    client.mark_synced(unit, [code])
    [row] = sim_dossiers(sim, mahoso=code)
    assert row["synced"] and row["mark_count"] == 3  # two failed tries recorded, then the good one
    assert code not in {d.mahoso for d in client.fetch_dossiers(unit)}


def test_a_mark_rejected_in_the_body(simulator_factory, make_client):
    sim = simulator_factory(*SEED, "--errors-as-200")
    client = make_client(sim)
    # The simulator takes at most 10,000 codes a call; it refuses more in the body of an HTTP 200 answer.
    with pytest.raises(MarkSyncedRejected, match="10000"):
        client.mark_synced(units_of(sim)[0], [f"X-{i}" for i in range(10_001)], batch_size=20_000)


# -- tokens -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_200", [False, True], ids=["http-401", "errors-as-200"])
def test_an_expired_token_is_renewed_once_and_the_call_succeeds(simulator_factory, make_client, as_200):
    sim = simulator_factory(*SEED, *(["--errors-as-200"] if as_200 else []))
    client = make_client(sim)
    unit = units_of(sim)[0]
    expected = pending(sim, unit)
    assert {d.mahoso for d in client.fetch_dossiers(unit)} == expected
    expire_tokens(sim)
    assert {d.mahoso for d in client.fetch_dossiers(unit)} == expected
    assert stats(sim)["logins"] == 2
    expire_tokens(sim)
    client.mark_synced(unit, sorted(expected)[:1])
    assert stats(sim)["logins"] == 3 and stats(sim)["mark_calls"] == 1


def test_short_lived_tokens_never_lose_a_call(simulator_factory, make_client):
    sim = simulator_factory(*SEED, "--token-lifetime", "1")
    client = make_client(sim)
    unit = units_of(sim)[0]
    expected = pending(sim, unit)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        assert {d.mahoso for d in client.fetch_dossiers(unit)} == expected
    assert stats(sim)["logins"] >= 2


def test_threads_share_one_login(simulator_factory, make_client):
    sim = simulator_factory(*SEED)
    client = make_client(sim)
    unit = units_of(sim)[0]
    expected = pending(sim, unit)

    def run_together(count: int = 8) -> list:
        barrier = threading.Barrier(count)
        results: list = [None] * count

        def work(n: int) -> None:
            barrier.wait()
            try:
                results[n] = {d.mahoso for d in client.fetch_dossiers(unit)}
            except Exception as exc:  # reported by the assertion below
                results[n] = exc

        threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        return results

    assert run_together() == [expected] * 8
    assert stats(sim)["logins"] == 1
    expire_tokens(sim)
    assert run_together() == [expected] * 8
    assert stats(sim)["logins"] == 2


# -- faults -----------------------------------------------------------------------------------------


def test_server_errors_are_retried_then_unavailable(simulator_factory, make_client, caplog):
    sim = simulator_factory(*SEED, "--error-rate", "dongbodulieumotcua=1")
    client = make_client(sim, retries=2)
    unit = units_of(sim)[0]
    with caplog.at_level(logging.WARNING, logger="shared.onestop"), pytest.raises(OneStopUnavailable, match="HTTP 500"):
        list(client.fetch_dossiers(unit))
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2 and all(f"madonvi={unit}" in line for line in retries)
    set_faults(sim, error_rate={"dongbodulieumotcua": 0, "dangnhap": 1})
    fresh = make_client(sim, retries=1)
    with pytest.raises(OneStopUnavailable):
        fresh.login()
    set_faults(sim, error_rate={"dangnhap": 0})
    assert {d.mahoso for d in fresh.fetch_dossiers(unit)} == pending(sim, unit)


def test_429_is_retried_and_other_4xx_are_not(simulator_factory, make_client, caplog):
    sim = simulator_factory(*SEED, "--error-rate", "capnhattrangthaidongbo=1", "--error-status", "429")
    client = make_client(sim, retries=2)
    unit = units_of(sim)[0]
    with caplog.at_level(logging.WARNING, logger="shared.onestop"), pytest.raises(OneStopUnavailable, match="HTTP 429"):
        client.mark_synced(unit, ["A"])
    assert sum("retry" in r.getMessage() for r in caplog.records) == 2
    caplog.clear()
    set_faults(sim, error_status=404)
    refused = pytest.raises(OneStopRefused, match="HTTP 404")
    with caplog.at_level(logging.WARNING, logger="shared.onestop"), refused as caught:
        client.mark_synced(unit, ["A"])
    assert caught.value.status == 404 and not isinstance(caught.value, TransientError)
    assert not any("retry" in r.getMessage() for r in caplog.records)


def test_a_truncated_sync_response_is_an_error_not_a_short_list(simulator_factory, make_client):
    sim = simulator_factory(*SEED, "--truncate-rate", "1")
    client = make_client(sim, retries=1)
    unit = units_of(sim)[0]
    for _ in range(3):
        with pytest.raises(TransientError):
            list(client.fetch_dossiers(unit))
    set_faults(sim, truncate_rate=0)
    assert {d.mahoso for d in client.fetch_dossiers(unit)} == pending(sim, unit)


def test_a_hanging_server_hits_the_read_timeout(simulator_factory, make_client):
    sim = simulator_factory(*SEED, "--hang-rate", "1", "--hang-seconds", "2.5")
    client = make_client(sim, read_timeout=0.5, retries=1)
    started = time.monotonic()
    with pytest.raises(OneStopUnavailable, match="timeout"):
        client.login()
    assert time.monotonic() - started < 4  # two tries of 0.5 s, not two of the 2.5 s the server hangs


def test_a_server_that_is_not_there(make_client):
    from harness.services import free_port

    class Nowhere:
        api_url = f"http://127.0.0.1:{free_port()}/thainguyen/general/api/"

    client = make_client(Nowhere, retries=1)
    with pytest.raises(OneStopUnavailable, match="cannot reach"):
        client.login()


# -- APIs 5-8 ---------------------------------------------------------------------------------------


def test_document_types(simulator_factory, make_client):
    sim = simulator_factory(*SEED)
    types = make_client(sim).document_types()
    assert types and all(isinstance(t, DocumentType) and t.maloaitailieu for t in types)
    assert "FILE_TRA_KET_QUA" in {t.maloaitailieu for t in types}


def test_file_apis(simulator_factory, make_client):
    sim = simulator_factory(*SEED)
    client = make_client(sim)
    unit = units_of(sim)[0]
    dossier = next(d for d in client.fetch_dossiers(unit) if len({f.matailieu for f in d.file_dinh_kem}) >= 2)
    first, second = dossier.file_dinh_kem[0], dossier.file_dinh_kem[-1]

    client.mark_files_synced(unit, dossier.mahoso, [(first.matailieu, first.url_file)])
    [row] = sim_dossiers(sim, mahoso=dossier.mahoso)
    assert [f["synced"] for f in row["files"] if f["matailieu"] == first.matailieu] == [True]
    assert stats(sim)["file_mark_calls"] == 1

    content = "Quyết định số 12/QĐ-STC".encode() * 100
    client.replace_file(unit, dossier.mahoso, first.matailieu, "Quyết định mới.pdf", content)
    [row] = sim_dossiers(sim, mahoso=dossier.mahoso)
    [replaced] = [f for f in row["files"] if f["matailieu"] == first.matailieu]
    assert replaced["ten_file"] == "Quyết định mới.pdf" and replaced["size"] == len(content)

    client.delete_file(unit, dossier.mahoso, second.matailieu)
    [row] = sim_dossiers(sim, mahoso=dossier.mahoso)
    assert second.matailieu not in {f["matailieu"] for f in row["files"]}
    with pytest.raises(OneStopRefused, match="Không tìm thấy") as caught:
        client.delete_file(unit, dossier.mahoso, second.matailieu)
    assert caught.value.status == 404
    with pytest.raises(OneStopError, match="Không tìm thấy hồ sơ"):
        client.mark_files_synced(unit, "KHONG-CO-HO-SO", [("X", "http://x")])


# -- secrets ----------------------------------------------------------------------------------------

SECRET = "Mật-khẩu-7741-ZQX"


def test_the_password_and_token_never_show(simulator_factory, make_client, caplog):
    sim = simulator_factory(*SEED, env={"DONGBO_SIM_PASSWORD": SECRET})
    unit = units_of(sim)[0]
    shown: list[str] = []
    with caplog.at_level(logging.DEBUG):
        wrong = make_client(sim, password=SECRET + "-wrong")
        with pytest.raises(LoginFailed) as caught:
            wrong.login()
        shown += [str(caught.value), repr(caught.value), repr(wrong)]

        client = make_client(sim, password=SECRET)
        client.login()
        token = client._tokens.current  # read only to look for it below
        assert token and len(token) > 20
        expire_tokens(sim)  # a refused token, renewed
        list(client.fetch_dossiers(unit))
        set_faults(sim, error_rate={"all": 1})  # 500s on every call, retried, then raised
        for call in (lambda: list(client.fetch_dossiers(unit)), lambda: client.mark_synced(unit, ["A"]), client.login):
            with pytest.raises(OneStopUnavailable) as caught:
                call()
            shown += [str(caught.value), repr(caught.value), str(caught.value.__cause__)]
        shown.append(repr(client))
    shown.append(caplog.text)
    shown += [record.getMessage() for record in caplog.records]
    everything = "\n".join(shown)
    assert "madonvi=" in caplog.text
    assert SECRET not in everything
    assert client._tokens.current is None or client._tokens.current not in everything
    assert token not in everything


# -- no server needed -------------------------------------------------------------------------------


def test_from_settings():
    settings = load_settings(
        onestop_url="http://127.0.0.1:9/thainguyen/general/api",
        onestop_username=USER,
        onestop_password=SECRET,
        http_retries=1,
    )
    client = OneStopClient.from_settings(settings)
    assert client.base_url.endswith("/api/") and SECRET not in repr(client)
    client.close()
    with pytest.raises(ConfigError, match="DONGBO_ONESTOP_PASSWORD"):
        OneStopClient.from_settings(load_settings(onestop_url="http://x/", onestop_username=USER))


@pytest.mark.parametrize("options", [{"retries": -1}, {"read_timeout": 0}, {"max_files_per_dossier": 0}])
def test_settings_that_make_no_sense_are_refused(options):
    with pytest.raises(ValueError):
        OneStopClient("http://127.0.0.1:9/api/", USER, PASSWORD, **options)
    with pytest.raises(ValueError):
        OneStopClient("ftp://127.0.0.1/api/", USER, PASSWORD)


def test_a_password_in_the_url_is_not_shown():
    client = OneStopClient(f"http://proxy:{SECRET}@127.0.0.1:9/api", USER, PASSWORD)
    assert SECRET not in repr(client) and "127.0.0.1:9/api/" in repr(client)


def test_backoff_grows_with_jitter_and_believes_retry_after_within_a_cap():
    policy = RetryPolicy(retries=5, backoff=1.0, max_delay=8.0, max_retry_after=60.0)
    for number, base in [(1, 1.0), (2, 2.0), (3, 4.0), (5, 8.0), (9, 8.0)]:
        delays = {policy.delay(number) for _ in range(50)}
        assert all(base / 2 <= d <= base for d in delays) and len(delays) > 1

    assert policy.delay(1, OneStopUnavailable("429", retry_after=7.0)) == 7.0
    assert policy.delay(1, OneStopUnavailable("429", retry_after=3600.0)) == 60.0

    response = requests.Response()
    for header, seconds in [("120", 120.0), ("1.5", 1.5), ("-3", 0.0), ("", None), ("soon", None), ("nan", None)]:
        response.headers["Retry-After"] = header
        assert retry_after(response) == seconds
    response.headers["Retry-After"] = "Wed, 21 Oct 2015 07:28:00 GMT"  # in the past
    assert retry_after(response) == 0.0
