"""Quick measurements (seconds, not minutes): memory bandwidth, matrix throughput, disk read speed.

- Memory bandwidth: NumPy copy (read + write counted, as STREAM does) and sum (read) over arrays
  far larger than the caches, split across all CPUs with threads (NumPy releases the GIL for both),
  best of a few runs.
- Matrix throughput: float32 matmul with NumPy's BLAS; bf16 with torch when it is installed.
- Disk: write a temp file next to the model path, then read it with O_DIRECT (page cache bypassed);
  where O_DIRECT is refused (tmpfs, some overlay filesystems), fsync + posix_fadvise(DONTNEED) and
  a plain read, which the report marks as possibly cached.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def _best(fn, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def memory_bandwidth(total_mb: int = 256, runs: int = 4, threads: int | None = None) -> dict:
    """GB/s (1e9 B/s) for copy and read, best of `runs`."""
    threads = threads or os.cpu_count() or 1
    n = total_mb * 2**20 // 8
    a = np.ones(n, dtype=np.float64)
    b = np.empty_like(a)
    chunks = np.array_split(np.arange(n), threads)
    bounds = [(int(c[0]), int(c[-1]) + 1) for c in chunks if len(c)]

    with ThreadPoolExecutor(max_workers=len(bounds)) as ex:

        def copy():
            list(ex.map(lambda r: np.copyto(b[r[0] : r[1]], a[r[0] : r[1]]), bounds))

        def read():
            list(ex.map(lambda r: a[r[0] : r[1]].sum(), bounds))

        copy()  # touch the pages first
        t_copy = _best(copy, runs)
        t_read = _best(read, runs)
    nbytes = a.nbytes
    return {
        "copy_gbs": 2 * nbytes / t_copy / 1e9,
        "read_gbs": nbytes / t_read / 1e9,
        "array_mb": total_mb,
        "threads": len(bounds),
        "runs": runs,
    }


def _adaptive_matmul(mm, make, budget_s: float, n_max: int) -> tuple[float, int]:
    """Grow n from 256 until one product takes ~0.1 s (or n_max), within `budget_s`; best of 3 at that n."""
    deadline = time.perf_counter() + budget_s
    n, best = 256, None
    while True:
        x, y = make(n)
        mm(x, y)
        t = _best(lambda x=x, y=y: mm(x, y), 3 if time.perf_counter() < deadline else 1)
        best = (2 * n**3 / t / 1e12, n)
        if t >= 0.1 or 2 * n > n_max or time.perf_counter() + 8 * 4 * t > deadline:
            return best
        n *= 2


def matmul_tflops(budget_s: float = 3.0, n_max: int = 4096) -> dict:
    """Dense matmul TFLOPS: float32 via NumPy's BLAS, bf16 via torch when installed."""
    rng = np.random.default_rng(0)

    def make32(n):
        return rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)

    out: dict = {}
    out["fp32"], out["fp32_n"] = _adaptive_matmul(lambda x, y: x @ y, make32, budget_s, n_max)
    try:
        import torch

        def make16(n):
            x, y = make32(n)
            return torch.from_numpy(x).to(torch.bfloat16), torch.from_numpy(y).to(torch.bfloat16)

        out["bf16"], out["bf16_n"] = _adaptive_matmul(lambda x, y: x @ y, make16, budget_s, n_max)
        out["bf16_via"] = f"torch {torch.__version__}"
    except Exception:  # torch missing or without CPU bf16 matmul
        pass
    return out


def disk_read_speed(path: str | Path, size_mb: int = 256) -> dict:
    """Sequential read GB/s of the filesystem holding `path` (a file or folder, existing or not)."""
    p = Path(path)
    d = p if p.is_dir() else p.parent
    while not d.exists() and d != d.parent:
        d = d.parent
    block = 4 * 2**20
    nblocks = max(1, size_mb * 2**20 // block)
    payload = np.random.default_rng(2).integers(0, 256, block, dtype=np.uint8).tobytes()
    fd, tmp = tempfile.mkstemp(prefix=".dsdeploy-doctor-", dir=d)
    method = "o_direct"
    try:
        with os.fdopen(fd, "wb") as fh:
            for _ in range(nblocks):
                fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        size = nblocks * block
        buf = mmap.mmap(-1, block)  # page-aligned, as O_DIRECT needs
        t0 = time.perf_counter()
        got = 0
        try:
            rfd = os.open(tmp, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
            if not hasattr(os, "O_DIRECT"):
                raise OSError("no O_DIRECT")
            try:
                while True:
                    r = os.readv(rfd, [buf])
                    if r <= 0:
                        break
                    got += r
            finally:
                os.close(rfd)
        except OSError:
            method = "fadvise_dontneed"
            rfd = os.open(tmp, os.O_RDONLY)
            try:
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(rfd, 0, 0, os.POSIX_FADV_DONTNEED)
                got = 0
                t0 = time.perf_counter()
                while True:
                    chunk = os.read(rfd, block)
                    if not chunk:
                        break
                    got += len(chunk)
            finally:
                os.close(rfd)
        dt = time.perf_counter() - t0
        buf.close()
        return {
            "path": str(d),
            "read_gbs": got / dt / 1e9 if dt > 0 else None,
            "bytes": got,
            "file_mb": size // 2**20,
            "method": method,
            "cache_bypassed": method == "o_direct",
        }
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
