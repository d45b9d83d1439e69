#!/usr/bin/env python3
"""How well do training-checkpoint tensors compress? The seed article says ZFS's inline compression
cuts checkpoint storage by 40 %. ZFS compresses each record (128 KiB by default) with lz4 (its
default) or zstd/gzip. This measures, on the tiny DeepSeek-V3 model's real tensors:

- bf16 weights as shipped (model.safetensors);
- fp32 master weights and AdamW's exp_avg / exp_avg_sq after a few real training steps (what a
  ZeRO/FSDP checkpoint is made of: 12 of its 12–14 bytes per parameter);
- fp32 weights that are only bf16 upcast (low 16 bits zero: the best case, not a real checkpoint).

Each buffer is cut into 128 KiB records and each record compressed on its own, like ZFS.
Ratio = compressed / original (lower is better); saving = 1 − ratio.

    PYTHONPATH=src .venv/bin/python bench/finetune_compression.py
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "src/dsdeploy/tinymodel/artifacts/hf"
RECORD = 128 * 1024


def safetensors_raw(path: Path) -> dict[str, tuple[str, bytes]]:
    """name → (dtype, raw bytes), read from the file's own header (no framework needed for bf16)."""
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    return {
        k: (v["dtype"], data[base + v["data_offsets"][0] : base + v["data_offsets"][1]])
        for k, v in header.items()
        if k != "__metadata__"
    }


def compressors() -> dict:
    out = {"zlib-6": lambda b: zlib.compress(b, 6), "zlib-1": lambda b: zlib.compress(b, 1)}
    try:
        import lz4.block

        out["lz4"] = lambda b: lz4.block.compress(b, store_size=False)
    except ImportError:
        pass
    try:
        import zstandard

        c = zstandard.ZstdCompressor(level=3)
        out["zstd-3"] = c.compress
    except ImportError:
        pass
    return out


def ratio(buf: bytes, fn) -> float:
    done = 0
    for i in range(0, len(buf), RECORD):
        rec = buf[i : i + RECORD]
        done += min(len(fn(rec)), len(rec))  # ZFS stores a record raw when compression does not help
    return done / len(buf)


def measure() -> dict[str, dict[str, float]]:
    comps = compressors()
    raw = safetensors_raw(TINY / "model.safetensors")
    bf16 = b"".join(b for dt, b in raw.values() if dt == "BF16")
    res = {"bf16 weights": {k: ratio(bf16, f) for k, f in comps.items()}}

    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(str(TINY), dtype=torch.float32)
    upcast = b"".join(p.detach().numpy().tobytes() for p in m.parameters())
    res["fp32 upcast from bf16 (best case)"] = {k: ratio(upcast, f) for k, f in comps.items()}
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    ids = torch.randint(3, m.config.vocab_size, (2, 64), generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        m(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    master = b"".join(p.detach().numpy().tobytes() for p in m.parameters())
    states = [opt.state[p] for p in m.parameters() if p in opt.state]
    m1 = b"".join(s["exp_avg"].numpy().tobytes() for s in states)
    m2 = b"".join(s["exp_avg_sq"].numpy().tobytes() for s in states)
    res["fp32 master weights after 3 AdamW steps"] = {k: ratio(master, f) for k, f in comps.items()}
    res["fp32 Adam exp_avg"] = {k: ratio(m1, f) for k, f in comps.items()}
    res["fp32 Adam exp_avg_sq"] = {k: ratio(m2, f) for k, f in comps.items()}
    ck = master + m1 + m2
    res["checkpoint (master + exp_avg + exp_avg_sq)"] = {k: ratio(ck, f) for k, f in comps.items()}
    return res


def main() -> int:
    res = measure()
    cols = list(next(iter(res.values())))
    print("| tensors | " + " | ".join(f"{c} ratio" for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name, r in res.items():
        print(f"| {name} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
