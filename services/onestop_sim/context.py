"""What every route needs, built once in `cli.main` and hung on `app.state.sim`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from fastapi import Request

from services.onestop_sim.counters import Counters
from services.onestop_sim.faults import FaultState
from services.onestop_sim.poison import PoisonSizes
from services.onestop_sim.state import Store
from services.onestop_sim.tokens import Tokens


@dataclass(frozen=True)
class SimConfig:
    username: str
    password: str
    public_url: str  # scheme://host:port that url_file values start with
    seed: int  # the seed the state file was filled with (it decides the file bytes)
    poison: PoisonSizes = field(default_factory=PoisonSizes)


@dataclass
class Sim:
    config: SimConfig
    store: Store
    counters: Counters
    tokens: Tokens
    faults: FaultState
    # Numbers the sync responses, so that `--shape mixed` can rotate the outer form per response.
    responses: itertools.count = field(default_factory=itertools.count)
    # Seconds each `drip` transfer was held open by its client, newest last (for `/_sim/stats`).
    drips: list[float] = field(default_factory=list)


def sim_of(request: Request) -> Sim:
    return request.app.state.sim
