"""What is moved (workloads) and over what (links), and the simulator options that make each."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import requests


@dataclass(frozen=True)
class Workload:
    name: str
    dossiers: int
    files: int  # per dossier
    file_size: tuple[int, int]  # bytes, uniform between the two
    units: int = 2
    seed: int = 11

    def sim_args(self) -> list[str]:
        low, high = self.file_size
        return ["--seed", str(self.seed), "--units", str(self.units), "--dossiers", str(self.dossiers),
                "--files-per-dossier", str(self.files), "--file-size", f"{low}-{high}"]

    def describe(self) -> str:
        low, high = self.file_size
        size = f"{low // 1000}-{high // 1000} KB" if high >= 10_000 else f"{low}-{high} B"
        return f"{self.dossiers} dossiers × {self.files} files of {size}"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Link:
    name: str
    latency_ms: float = 0  # added by the simulator to every API call and file GET
    bandwidth: float = 0  # bytes/s per file download, 0 = unpaced

    def sim_args(self) -> list[str]:
        args = []
        if self.latency_ms:
            args += ["--latency-ms", f"{self.latency_ms:g}"]
        if self.bandwidth:
            args += ["--file-bandwidth", f"{self.bandwidth:g}"]
        return args

    def describe(self) -> str:
        if not (self.latency_ms or self.bandwidth):
            return "loopback, no added latency or pacing"
        return f"+{self.latency_ms:g} ms per request, {self.bandwidth * 8 / 1e6:g} Mbit/s per file connection"

    def as_dict(self) -> dict:
        return asdict(self)


LINKS = {
    "loopback": Link("loopback"),
    # About 30 ms more on every request and about 20 Mbit/s per connection (2.5 MB/s).
    "wan": Link("wan", latency_ms=30, bandwidth=2_500_000),
}

STANDARD_SIZE = (100_000, 300_000)  # mean 200 KB
TINY_SIZE = (1024, 2048)  # the simulator's smallest valid PDF is 1 KiB


def workload(name: str, dossiers: int, files: int) -> Workload:
    if name == "standard":
        return Workload("standard", dossiers, files, STANDARD_SIZE)
    if name == "tiny":
        return Workload("tiny", dossiers, files, TINY_SIZE)
    raise ValueError(f"unknown workload {name!r} (standard, tiny)")


@dataclass
class Corpus:
    """What one seeded simulator expects the pipeline to bring in (dossiers with a result and files)."""

    units: list[str]
    dossiers: int
    files: list[tuple[str, int, str]]  # (url_file, size, a key for the plain copy)
    bytes: int
    listing: list[dict]

    @classmethod
    def of(cls, sim_root: str) -> Corpus:
        listing = requests.get(sim_root + "/_sim/dossiers", timeout=600).json()
        expected = [d for d in listing if d["has_result"] and d["files"] and not d["poison"]]
        files = []
        for d in expected:
            for n, f in enumerate(d["files"]):
                files.append((f["url_file"], f["size"], f"{d['madonvi']}/{d['mahoso']}/{n}"))
        return cls(units=sorted({d["madonvi"] for d in listing}), dossiers=len(expected), files=files,
                   bytes=sum(size for _, size, _ in files), listing=expected)

    @classmethod
    def counted(cls, sim_root: str, workload: Workload) -> Corpus:
        """Counts only, without the per-file listing (for seeds too big to list)."""
        from services.onestop_sim.seed import unit_codes

        stats = requests.get(sim_root + "/_sim/stats", timeout=600).json()
        return cls(units=unit_codes(workload.units), dossiers=stats["pending"], files=[], bytes=0, listing=[])
