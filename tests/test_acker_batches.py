"""The acker's handler: one mark-synced call per unit per batch; a poison message fails alone."""

from __future__ import annotations

import requests

from harness.pipeline import sim_dossiers
from services.acker.handler import AckHandler
from shared.broker.outcome import Delivery, Done
from shared.db.engine import make_engine, upgrade
from shared.errors import PoisonMessage
from shared.messages import DossierIndexed
from shared.onestop import OneStopClient


def test_the_acker_marks_each_unit_in_one_call_and_a_poison_message_fails_alone(simulator_factory, tmp_path):
    sim = simulator_factory("--units", "2", "--dossiers", "12", "--files-per-dossier", "1", "--file-size", "1024")
    dossiers = [d for d in sim_dossiers(sim) if d["has_result"] and d["files"]]
    url = f"sqlite:///{tmp_path / 'dongbo.db'}"
    upgrade(url)
    client = OneStopClient(sim.api_url, "admin_sotaichinh", "1")
    deliveries = [Delivery(tag=i, body=DossierIndexed(mahoso=d["mahoso"], madonvi=d["madonvi"]).to_bytes(), headers={})
                  for i, d in enumerate(dossiers)]
    deliveries.insert(3, Delivery(tag=99, body=b"{}", headers={}))

    results = AckHandler(client, make_engine(url), batch_size=100)(deliveries)

    assert isinstance(results[3], PoisonMessage)
    assert all(isinstance(r, Done) for i, r in enumerate(results) if i != 3)
    stats = requests.get(sim.root + "/_sim/stats", timeout=10).json()
    assert stats["mark_calls"] == len({d["madonvi"] for d in dossiers}) == 2
    assert all(d["synced"] for d in sim_dossiers(sim) if d["mahoso"] in {x["mahoso"] for x in dossiers})
