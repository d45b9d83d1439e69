"""Storage read rate and cold-start (weight load) time. Pure functions; units: bytes, GB/s (1e9 B/s), s.

cold-start time = weight bytes ÷ effective read rate, where
- per-drive sequential read comes from the hardware catalog's storage classes (facts.md §2c);
- RAID0 over N drives: N × per-drive rate (theory; linear scaling is UNCONFIRMED — facts.md §2c);
- mmap loading (llama.cpp, ik_llama.cpp, ollama, KTransformers' GGUF path) goes through the Linux page
  cache with buffered I/O. Measured counter-example: 4 × PCIe 5.0 NVMe in RAID0 gave no benefit over one
  drive when mmap-streaming DeepSeek-R1 weights; the page cache was the bottleneck (facts.md §2c
  [ubergarm-zh]). So for mmap we cap the rate at `page_cache_gbs`, by default one drive's rate;
- the host link to the accelerators (PCIe) caps it too when the weights go to device memory.
"""

from __future__ import annotations

from dataclasses import dataclass

MMAP_ENGINES = frozenset({"llama.cpp", "ik_llama.cpp", "ollama", "ktransformers"})
PAGE_CACHE_SOURCE = (
    "facts.md §2c [ubergarm-zh]: 4× PCIe 5.0 RAID0 gave no benefit over one drive under mmap (page cache bound)"
)
RAID0_SOURCE = "facts.md §2c: RAID0 ≈ linear in drive count (theory; UNCONFIRMED)"


@dataclass(frozen=True)
class LoadTime:
    weights_bytes: int
    drive_class: str
    drives: int
    per_drive_gbs: float
    array_gbs: float  # what the drives deliver together (RAID0) or one drive (JBOD)
    mmap: bool
    page_cache_gbs: float | None
    host_link_gbs: float | None
    effective_gbs: float
    bound: str  # "drives" | "page-cache" | "host-link"
    seconds: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "weights_bytes": self.weights_bytes,
            "drive_class": self.drive_class,
            "drives": self.drives,
            "per_drive_gbs": self.per_drive_gbs,
            "array_gbs": round(self.array_gbs, 3),
            "mmap": self.mmap,
            "effective_gbs": round(self.effective_gbs, 3),
            "bound": self.bound,
            "seconds": round(self.seconds, 1),
            "notes": list(self.notes),
        }


def load_time(
    weights_bytes: int,
    per_drive_gbs: float,
    drives: int = 1,
    raid0: bool = True,
    mmap: bool = False,
    page_cache_gbs: float | None = None,
    host_link_gbs: float | None = None,
    drive_class: str = "",
) -> LoadTime:
    """Seconds to read the weights once from cold storage."""
    if per_drive_gbs <= 0 or drives < 1:
        raise ValueError("per-drive rate must be > 0 and drives ≥ 1")
    array = per_drive_gbs * drives if raid0 else per_drive_gbs
    rate, bound = array, "drives"
    notes = []
    if raid0 and drives > 1:
        notes.append(RAID0_SOURCE)
    if mmap:
        cap = page_cache_gbs if page_cache_gbs is not None else per_drive_gbs
        if cap < rate:
            rate, bound = cap, "page-cache"
            notes.append(f"mmap load capped at {cap:g} GB/s: {PAGE_CACHE_SOURCE}")
    if host_link_gbs is not None and host_link_gbs < rate:
        rate, bound = host_link_gbs, "host-link"
    return LoadTime(
        weights_bytes=weights_bytes,
        drive_class=drive_class,
        drives=drives,
        per_drive_gbs=per_drive_gbs,
        array_gbs=array,
        mmap=mmap,
        page_cache_gbs=page_cache_gbs,
        host_link_gbs=host_link_gbs,
        effective_gbs=rate,
        bound=bound,
        seconds=weights_bytes / (rate * 1e9),
        notes=tuple(notes),
    )
