"""Fine-tune the project's tiny DeepSeek-V3 model on the CPU for a few steps and print one JSON line:
trainable / total parameters as PEFT and torch count them, the losses, and the process's peak RSS.

Run in a child process (tests/test_finetune_real.py, bench/finetune_rss.py): a native abort fails one
caller with its message. Needs the `crosscheck` + `finetune` extras (torch==2.13.0 CPU wheel,
transformers, peft).

    python scripts/finetune_tiny.py --method lora --targets q_a_proj,o_proj --steps 3 --batch 2 --seq 32
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "src" / "dsdeploy" / "tinymodel" / "artifacts" / "hf"


def rss_bytes() -> int:
    """Current resident set size (Linux /proc), bytes."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", choices=("full", "lora"), default="lora")
    ap.add_argument("--targets", default="q_a_proj,q_b_proj,kv_a_proj_with_mqa,kv_b_proj,o_proj")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--grad-ckpt", action="store_true")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    rss_imports = rss_bytes()
    model = AutoModelForCausalLM.from_pretrained(str(TINY), dtype=torch.float32)
    model.config.use_cache = False
    total = sum(p.numel() for p in model.parameters())
    if a.method == "lora":
        from peft import LoraConfig, get_peft_model

        targets = a.targets if a.targets == "all-linear" else [t for t in a.targets.split(",") if t]
        model = get_peft_model(
            model, LoraConfig(r=a.rank, lora_alpha=2 * a.rank, lora_dropout=0.0, target_modules=targets)
        )
    if a.grad_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if a.method == "lora":
            model.enable_input_require_grads()
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params = [p for p in model.parameters() if p.requires_grad]
    lr = a.lr if a.lr is not None else (1e-3 if a.method == "full" else 5e-3)
    opt = torch.optim.AdamW(params, lr=lr)
    # one fixed batch, trained on repeatedly: the loss must fall
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, model.config.vocab_size, (a.batch, a.seq), generator=g)
    rss_loaded = rss_bytes()
    losses = []
    for _ in range(a.steps):
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(out.loss.detach()))
    print(
        json.dumps(
            {
                "method": a.method,
                "targets": a.targets,
                "rank": a.rank,
                "batch": a.batch,
                "seq": a.seq,
                "grad_ckpt": a.grad_ckpt,
                "params_total": total,
                "trainable": trainable,
                "losses": losses,
                "rss_after_imports": rss_imports,
                "rss_after_load": rss_loaded,
                "peak_rss": peak_rss_bytes(),
                "torch": torch.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
