"""Command line of the one-stop simulator (`python -m services.onestop_sim`, `dongbo onestop-sim`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import asdict

import uvicorn

from services.onestop_sim.app import create_app
from services.onestop_sim.context import Sim, SimConfig
from services.onestop_sim.counters import Counters
from services.onestop_sim.faults import ERROR_ENDPOINTS, SHAPES, Faults, FaultState, parse_error_rate
from services.onestop_sim.poison import KINDS, PoisonSizes, parse_kinds
from services.onestop_sim.seed import SeedParams, seed
from services.onestop_sim.state import Store
from services.onestop_sim.streaming import INCOMPLETE_MESSAGE
from services.onestop_sim.tokens import Tokens

log = logging.getLogger("services.onestop_sim")


def size_range(text: str) -> tuple[int, int]:
    """`--file-size`: a number of bytes, or MIN-MAX."""
    low, _, high = text.partition("-")
    try:
        low_n, high_n = int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not BYTES or MIN-MAX") from None
    if not 0 <= low_n <= high_n:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX")
    return low_n, high_n


def at_least(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}")
        return value
    return parse


def kinds_list(text: str) -> tuple[str, ...]:
    try:
        return parse_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def sizes_from(args: argparse.Namespace) -> PoisonSizes:
    return PoisonSizes(args.poison_field_chars, args.poison_item_bytes, args.poison_files, args.poison_huge_bytes,
                       args.poison_depth, args.poison_bomb_bytes, args.poison_redirect_bomb_bytes,
                       args.poison_drip_seconds)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dongbo onestop-sim",
                                description="A stand-in for the one-stop system's API and attachments.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--public-url", default=os.environ.get("DONGBO_SIM_PUBLIC_URL"),
                   help="scheme://host:port that url_file values start with (default: http://HOST:PORT)")
    p.add_argument("--state", default="onestop-sim.sqlite3", help="SQLite file; kept (not reseeded) if it holds data")
    p.add_argument("--access-log", action="store_true")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    data = p.add_argument_group("seed data (used only when the state file is new)")
    data.add_argument("--seed", type=int, default=1)
    data.add_argument("--units", type=at_least(1), default=2)
    data.add_argument("--dossiers", type=at_least(0), default=20)
    data.add_argument("--files-per-dossier", type=at_least(1), default=2)
    data.add_argument("--file-size", type=size_range, default=(20000, 200000), metavar="BYTES|MIN-MAX")
    data.add_argument("--poison", type=at_least(0), default=0, metavar="N",
                      help="N poison dossiers on top of --dossiers, their kinds in turn from --poison-kinds")
    data.add_argument("--poison-kinds", type=kinds_list, default=None, metavar="K1,K2,...|all",
                      help=f"default bad-date,missing-file,forbidden-host; known: {', '.join(KINDS)}")
    sizes = p.add_argument_group("poison sizes (docs/onestop-api.md, the simulator's poison)")
    defaults = PoisonSizes()
    sizes.add_argument("--poison-field-chars", type=at_least(1), default=defaults.field_chars)
    sizes.add_argument("--poison-item-bytes", type=at_least(1), default=defaults.item_bytes)
    sizes.add_argument("--poison-files", type=at_least(1), default=defaults.files)
    sizes.add_argument("--poison-huge-bytes", type=at_least(1), default=defaults.huge_bytes)
    sizes.add_argument("--poison-depth", type=at_least(1), default=defaults.depth)
    sizes.add_argument("--poison-bomb-bytes", type=at_least(1), default=defaults.bomb_bytes)
    sizes.add_argument("--poison-redirect-bomb-bytes", type=at_least(1), default=defaults.redirect_bomb_bytes)
    sizes.add_argument("--poison-drip-seconds", type=float, default=defaults.drip_seconds)
    faults = p.add_argument_group("faults (also settable at runtime: POST /_sim/faults)")
    faults.add_argument("--latency-ms", type=float, default=0)
    faults.add_argument("--error-rate", action="append", default=[], metavar="ENDPOINT=RATE",
                        help=f"ENDPOINT: {', '.join(ERROR_ENDPOINTS)}")
    faults.add_argument("--error-status", type=int, default=500)
    faults.add_argument("--token-lifetime", type=float, default=3600, metavar="SECONDS")
    faults.add_argument("--shape", choices=SHAPES, default="array")
    faults.add_argument("--errors-as-200", action="store_true")
    faults.add_argument("--truncate-rate", type=float, default=0)
    faults.add_argument("--hang-rate", type=float, default=0)
    faults.add_argument("--hang-seconds", type=float, default=30)
    faults.add_argument("--file-bandwidth", type=float, default=0, metavar="BYTES_PER_SEC")
    faults.add_argument("--mark-fail-after-record-rate", type=float, default=0)
    return p


def faults_from(args: argparse.Namespace) -> Faults:
    """Raises ValueError naming the bad option."""
    error_rate = dict(parse_error_rate(text) for text in args.error_rate)
    names = ("latency_ms", "error_status", "token_lifetime", "shape", "errors_as_200", "truncate_rate",
             "hang_rate", "hang_seconds", "file_bandwidth", "mark_fail_after_record_rate")
    return Faults().merged({"error_rate": error_rate, **{name: getattr(args, name) for name in names}})


class _DropDeliberateCuts(logging.Filter):
    """uvicorn reports a response cut short as an error; here that is the `--truncate-rate` fault at work."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != INCOMPLETE_MESSAGE


def open_state(path: str, params: SeedParams, sizes: PoisonSizes | None = None) -> Store:
    store = Store(path)
    if store.is_seeded():
        kept = store.get_meta("seeded_with")
        log.info("keeping the existing state in %s (seeded with %s); seed options ignored", path, kept)
        if kept != asdict(params) | {"file_size": list(params.file_size), "poison_kinds": list(params.poison_kinds)}:
            log.warning("the seed options differ from the ones %s was made with; delete it to reseed", path)
    else:
        log.info("seeding %s: %s", path, params)
        seed(store, params, sizes)
    return store


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("uvicorn.error").addFilter(_DropDeliberateCuts())
    try:
        faults = faults_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    params = SeedParams(args.seed, args.units, args.dossiers, args.files_per_dossier, args.file_size, args.poison,
                        args.poison_kinds or SeedParams.poison_kinds)
    sizes = sizes_from(args)
    store = open_state(args.state, params, sizes)
    host_for_urls = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    public_url = (args.public_url or f"http://{host_for_urls}:{args.port}").rstrip("/")
    config = SimConfig(
        username=os.environ.get("DONGBO_SIM_USERNAME", "admin_sotaichinh"),
        password=os.environ.get("DONGBO_SIM_PASSWORD", "1"),
        public_url=public_url,
        seed=store.get_meta("seeded_with")["seed"],
        poison=sizes,
    )
    sim = Sim(config, store, Counters(store), Tokens(store), FaultState(faults))
    log.info("one-stop simulator: API at %s/thainguyen/general/api/, faults %s", public_url, faults.as_dict())
    server = uvicorn.Server(uvicorn.Config(create_app(sim), host=args.host, port=args.port, log_config=None,
                                           access_log=args.access_log, timeout_graceful_shutdown=5))
    server.run()
    return 0
