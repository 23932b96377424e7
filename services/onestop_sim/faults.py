"""Fault injection settings: what misbehaviour the simulator adds, set at start and changed at runtime.

A `Faults` value is immutable; a change builds a new one and swaps it in whole, so a request never sees
half of an update. The same names (with underscores) work on the command line (with dashes) and in
`POST /_sim/faults`.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields, replace

API_ENDPOINTS = (
    "dangnhap", "dongbodulieumotcua", "capnhattrangthaidongbo",
    "danhmucloaitailieu", "capnhattrangthaidongbofile", "capnhatfiletheoloaitailieu", "xoafiletheoloaitailieu",
)
ERROR_ENDPOINTS = API_ENDPOINTS + ("files", "all")
SHAPES = ("array", "data", "files-string", "files-object", "mixed")
RATES = ("truncate_rate", "hang_rate", "mark_fail_after_record_rate")
AMOUNTS = ("latency_ms", "token_lifetime", "hang_seconds", "file_bandwidth")

_dice = random.Random()


def roll(rate: float) -> bool:
    """True with probability `rate` (never for 0, always for 1)."""
    return rate > 0 and _dice.random() < rate


@dataclass(frozen=True)
class Faults:
    latency_ms: float = 0
    error_rate: dict[str, float] = field(default_factory=dict)
    error_status: int = 500
    token_lifetime: float = 3600
    shape: str = "array"
    errors_as_200: bool = False
    truncate_rate: float = 0
    hang_rate: float = 0
    hang_seconds: float = 30
    file_bandwidth: float = 0
    mark_fail_after_record_rate: float = 0

    def error_rate_for(self, endpoint: str | None) -> float:
        """The rate for one endpoint: its own or the `all` rate, whichever is higher."""
        own = self.error_rate.get(endpoint, 0.0) if endpoint else 0.0
        return max(own, self.error_rate.get("all", 0.0))

    def as_dict(self) -> dict:
        return asdict(self)

    def merged(self, changes: dict) -> Faults:
        """A copy with `changes` applied; `error_rate` merges per endpoint. Raises ValueError if invalid."""
        if not isinstance(changes, dict):
            raise ValueError("faults must be a JSON object")
        known = {f.name for f in fields(self)}
        values: dict = {}
        for raw_name, value in changes.items():
            name = str(raw_name).replace("-", "_")
            if name not in known:
                raise ValueError(f"unknown fault {raw_name!r}; known: {', '.join(sorted(known))}")
            values[name] = _check(name, value)
        if "error_rate" in values:
            merged = {**self.error_rate, **values["error_rate"]}
            values["error_rate"] = {k: v for k, v in merged.items() if v > 0}
        return replace(self, **values)


def _check(name: str, value):
    if name == "error_rate":
        if not isinstance(value, dict):
            raise ValueError('error_rate must be an object like {"files": 0.2}')
        return {endpoint: _rate(f"error_rate.{endpoint}", rate, endpoint) for endpoint, rate in value.items()}
    if name == "shape":
        if value not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}")
        return value
    if name == "errors_as_200":
        if not isinstance(value, bool):
            raise ValueError("errors_as_200 must be true or false")
        return value
    if name == "error_status":
        if not isinstance(value, int) or isinstance(value, bool) or not 400 <= value <= 599:
            raise ValueError("error_status must be an HTTP error status (400-599)")
        return value
    if name in RATES:
        return _rate(name, value)
    if not _is_number(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0")
    return float(value)


def _rate(name: str, value, endpoint: str | None = None) -> float:
    if endpoint is not None and endpoint not in ERROR_ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; known: {', '.join(ERROR_ENDPOINTS)}")
    if not _is_number(value) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number between 0 and 1")
    return float(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def parse_error_rate(text: str) -> tuple[str, float]:
    """`ENDPOINT=RATE` from the command line."""
    endpoint, sep, rate = text.partition("=")
    try:
        return endpoint, _rate(f"error rate of {endpoint}", float(rate) if sep else None, endpoint)
    except ValueError as exc:
        raise ValueError(f"--error-rate {text!r}: {exc}") from None


class FaultState:
    """The faults in force, and the ones the simulator started with (`{"reset": true}` goes back to them)."""

    def __init__(self, initial: Faults):
        self.initial = self.current = initial

    def update(self, changes: dict) -> Faults:
        changes = dict(changes) if isinstance(changes, dict) else changes
        base = self.current
        if isinstance(changes, dict) and changes.pop("reset", False) is True:
            base = self.initial
        self.current = base.merged(changes)
        return self.current
