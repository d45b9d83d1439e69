"""One (or a few) DeepSpeed ZeRO-3 + CPU-offload steps of the tiny DeepSeek-V3 model on the CPU
accelerator with the gloo backend, using the DeepSpeed JSON `dsdeploy finetune` emits. Prints one
JSON line. The first run JIT-compiles DeepSpeed's cpu_adam op (about 80 s on 2 cores).

    DS_ACCELERATOR=cpu python scripts/finetune_tiny_zero3.py --steps 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "src" / "dsdeploy" / "tinymodel" / "artifacts" / "hf"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--sharding", default="zero3-offload-cpu")
    a = ap.parse_args(argv)
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    for k, v in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(k, v)
    os.environ.setdefault("MASTER_PORT", "29517")
    sys.path.insert(0, str(ROOT / "src"))
    import deepspeed
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.integrations import HfDeepSpeedConfig

    from dsdeploy.engines.finetune_configs import deepspeed_config
    from dsdeploy.estimators.finetune import FinetuneSetup

    torch.manual_seed(0)
    setup = FinetuneSetup(method="full", precision="fp32", sharding=a.sharding, gpus_per_node=1, micro_batch=2)
    cfg = deepspeed_config(setup)
    cfg["optimizer"]["params"]["lr"] = 1e-3
    t0 = time.time()
    deepspeed.init_distributed(dist_backend="gloo")
    dschf = HfDeepSpeedConfig(cfg)  # noqa: F841  (must stay alive: zero.Init during from_pretrained)
    model = AutoModelForCausalLM.from_pretrained(str(TINY), dtype=torch.float32)
    model.config.use_cache = False
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=cfg)
    t_init = time.time() - t0
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, model.config.vocab_size, (2, 32), generator=g)
    losses = []
    for _ in range(a.steps):
        out = engine(input_ids=ids, labels=ids)
        engine.backward(out.loss)
        engine.step()
        losses.append(float(out.loss.detach()))
    print(
        json.dumps(
            {
                "sharding": a.sharding,
                "zero_stage": engine.zero_optimization_stage(),
                "backend": torch.distributed.get_backend(),
                "optimizer": type(
                    engine.optimizer.optimizer if hasattr(engine.optimizer, "optimizer") else engine.optimizer
                ).__name__,
                "init_seconds": round(t_init, 1),
                "losses": losses,
                "deepspeed": deepspeed.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
