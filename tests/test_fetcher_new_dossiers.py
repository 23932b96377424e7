"""The fetcher's hand-off: only a dossier never handed on before carries the new-dossier header."""

from __future__ import annotations

from harness.pipeline import sim_dossiers
from shared.broker.connection import connect
from shared.broker.publisher import Publisher
from shared.broker.topology import DOWNLOAD, Topology
from shared.db.engine import make_engine, upgrade
from shared.onestop import OneStopClient
from shared.onestop.models import Dossier

DOSSIER = Dossier.model_validate({
    "mahoso": "000.00.17.H55-200917-0013", "madonvi": "000.00.17.H55", "tentochuccanhan": "Nguyễn Văn A",
    "ngaynhan": "17/09/2020", "mathutuc": "1.005434.000.00.00.H55", "tenthutuc": "Thủ tục",
    "file_dinh_kem": [{"matailieu": "000.00.00.G12-KQ5586", "tentailieu": "Bản sao", "ten_file": "file_dinh_kem.pdf",
                       "url_file": "http://motcua.thainguyen.gov.vn/a/2020_10_19_031048885!~!file_dinh_kem.pdf"}],
})


def test_the_fetcher_marks_only_dossiers_it_never_handed_on_as_new(
    simulator_factory, rabbit_url, queue_prefix, tmp_path
):
    """The mark lets a downloader skip looking for stored copies; a dossier handed on again must not carry it."""
    from datetime import timedelta

    from shared.broker.publisher import NEW_DOSSIER_HEADER
    from shared.handoff import poll_unit

    sim = simulator_factory("--units", "1", "--dossiers", "20", "--files-per-dossier", "1", "--file-size", "1024")
    madonvi = sim_dossiers(sim)[0]["madonvi"]
    url = f"sqlite:///{tmp_path / 'dongbo.db'}"
    upgrade(url)
    engine = make_engine(url)
    topology = Topology(queue_prefix, (0.5, 1.0, 2.0))
    connection = connect(rabbit_url, "test")
    channel = connection.channel()
    topology.declare(channel)
    publisher = Publisher(channel, topology)
    client = OneStopClient(sim.api_url, "admin_sotaichinh", "1")

    def poll_and_take() -> list[dict]:
        # inflight_timeout=0: every dossier still in flight counts as stuck and is handed on again.
        poll_unit(client, publisher, engine, topology, madonvi, inflight_timeout=timedelta(0))
        taken = []
        while (got := channel.basic_get(topology.queue(DOWNLOAD), auto_ack=True))[0] is not None:
            taken.append(got[1].headers or {})
        return taken

    first, second = poll_and_take(), poll_and_take()
    connection.close()
    assert len(first) == len(second) > 0
    assert all(headers.get(NEW_DOSSIER_HEADER) is True for headers in first)
    assert not any(NEW_DOSSIER_HEADER in headers for headers in second)
