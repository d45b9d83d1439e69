#!/usr/bin/env python3
"""Build dsdeploy's tiny DeepSeek-V3-architecture model, deterministically, on CPU.

Steps (all seeded; 1 thread). Measured on a 2-core box with the other core busy: about
1-1.5 s per training step (batch 16 x 128); see docs/tiny-model.md and build_info.json.

1. corpus   -- ``src/dsdeploy/tinymodel/artifacts/corpus.txt``. Normally read as-is
               (it is committed, so a rebuild does not depend on the repo changing).
               ``--refresh-corpus`` re-snapshots it from this repo's .py/.md files
               under src/ and docs/ plus a fixed list of Python standard-library modules.
2. tokenizer -- byte-level BPE (GPT-2 regex), vocab 2048, DeepSeek-style specials.
3. model     -- ``transformers`` ``DeepseekV3ForCausalLM`` from a hand-written small
               config with DeepSeek's real MLA sizes (kv_lora 512, rope 64, nope 128,
               v 128), sigmoid-routed MoE with a non-zero e_score_correction_bias.
4. train     -- 450 AdamW steps (batch 16 x 128 tokens; lr 1e-3 for the blocks, 1e-2 for
               embeddings / lm_head, weight decay 0.1, warm-up + cosine, clip 1.0) on the
               corpus (random weights make llama.cpp's streaming detokenizer super-linear).
5. save      -- HF folder (bf16 safetensors) in ``artifacts/hf`` and a q8_0 GGUF at
               ``artifacts/tiny-deepseek.gguf`` via ``dsdeploy.tinymodel.gguf_writer``.

Needs the ``crosscheck`` extra (torch==2.13.0, transformers, tokenizers).

    python scripts/build_tiny_model.py [--steps 450] [--batch 16] [--refresh-corpus]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

# Determinism knobs must be set before torch / tokenizers spin up their pools.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from dsdeploy.tinymodel import ARTIFACTS_DIR, MODEL_NAME  # noqa: E402
from dsdeploy.tinymodel.gguf_writer import convert_hf_to_gguf  # noqa: E402

SEED = 20261
DOC_SEP = "\x1e"  # ASCII record separator between documents in corpus.txt

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
SPECIAL_TOKENS = [BOS, EOS, PAD, USER, ASSISTANT]  # ids 0..4

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '<｜Assistant｜>' + message['content'] + eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜>' }}{% endif %}"
)

# Small, but with DeepSeek's real MLA head sizes (vLLM's MLA kernels accept only these).
MODEL_CONFIG = dict(
    vocab_size=2048,
    hidden_size=256,
    intermediate_size=512,
    moe_intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=2,
    num_key_value_heads=2,
    n_shared_experts=1,
    n_routed_experts=8,
    num_experts_per_tok=2,
    n_group=1,
    topk_group=1,
    first_k_dense_replace=1,
    norm_topk_prob=True,
    routed_scaling_factor=2.5,
    q_lora_rank=128,
    kv_lora_rank=512,
    qk_rope_head_dim=64,
    qk_nope_head_dim=128,
    v_head_dim=128,
    max_position_embeddings=2048,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    num_nextn_predict_layers=0,
    bos_token_id=0,
    eos_token_id=1,
    pad_token_id=2,
    initializer_range=0.02,
)
# Keys transformers 5 drops from config.json but llama.cpp's converter and vLLM read.
EXTRA_CONFIG = {"scoring_func": "sigmoid", "topk_method": "noaux_tc", "rope_theta": 10000.0}

# Standard-library modules mixed into the corpus (the repo alone is only a few KB).
STDLIB_MODULES = [
    "textwrap",
    "string",
    "shlex",
    "fnmatch",
    "glob",
    "json/__init__",
    "json/decoder",
    "json/encoder",
    "argparse",
    "dataclasses",
    "functools",
    "contextlib",
    "pathlib",
    "heapq",
    "bisect",
    "statistics",
    "fractions",
    "random",
    "copy",
    "pprint",
    "csv",
    "configparser",
    "queue",
    "sched",
    "timeit",
    "tempfile",
    "shutil",
    "ipaddress",
    "base64",
    "colorsys",
    "calendar",
    "graphlib",
    "numbers",
    "operator",
    "abc",
]
CORPUS_CAP = 900_000  # characters


# --------------------------------------------------------------------------------------
# 1. corpus
# --------------------------------------------------------------------------------------


def snapshot_corpus(path: Path) -> None:
    import textwrap

    docs: list[str] = []
    skip = ARTIFACTS_DIR.resolve()
    for root in ("docs", "src"):
        for f in sorted((REPO / root).rglob("*")):
            if f.suffix not in (".py", ".md") or not f.is_file() or skip in f.resolve().parents:
                continue
            text = f.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                docs.append(f"# file: {f.relative_to(REPO)}\n{text}\n")
    libdir = Path(textwrap.__file__).resolve().parent
    total = sum(map(len, docs))
    for mod in STDLIB_MODULES:
        f = libdir / f"{mod}.py"
        if not f.exists() or total > CORPUS_CAP:
            continue
        text = f.read_text(encoding="utf-8").strip()
        docs.append(f"# file: Lib/{mod}.py\n{text}\n")
        total += len(text)
    body = DOC_SEP.join(d.replace(DOC_SEP, "") for d in docs)
    path.write_text(body, encoding="utf-8")


def load_corpus(path: Path) -> list[str]:
    return [d for d in path.read_text(encoding="utf-8").split(DOC_SEP) if d.strip()]


def chat_pairs(docs: list[str], limit: int = 600) -> list[tuple[str, str]]:
    """(question, answer) pairs: docstrings of public defs, and markdown sections."""
    pairs: list[tuple[str, str]] = []
    for doc in docs:
        header, _, body = doc.partition("\n")
        fname = header.removeprefix("# file: ").strip()
        if fname.endswith(".md"):
            sections = body.split("\n#")
            for s in sections[1:]:
                title, _, text = s.lstrip("#").strip().partition("\n")
                para = text.strip().split("\n\n")[0].strip()
                if title and 20 < len(para) < 600:
                    pairs.append((f"What does the section '{title.strip()}' say?", para))
            continue
        try:
            tree = ast.parse(body)
        except SyntaxError:
            continue
        mod = Path(fname).with_suffix("").as_posix().removeprefix("Lib/").removeprefix("src/")
        mod = mod.replace("/", ".").removesuffix(".__init__")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                ds = ast.get_docstring(node)
                if not ds:
                    continue
                para = ds.strip().split("\n\n")[0].strip()
                if 20 < len(para) < 500:
                    kind = "class" if isinstance(node, ast.ClassDef) else "function"
                    pairs.append((f"What does the {kind} {mod}.{node.name} do?", para))
    return pairs[:limit]


# --------------------------------------------------------------------------------------
# 2. tokenizer
# --------------------------------------------------------------------------------------


def train_tokenizer(docs: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, 0)]
    )
    return tok


def save_tokenizer(tok, hf_dir: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, model_max_length=2048
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(hf_dir)
    # Make tokenizer_config.json self-contained (older readers, and our GGUF writer).
    (hf_dir / "chat_template.jinja").unlink(missing_ok=True)
    cfg_path = hf_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.update(
        add_bos_token=True,
        add_eos_token=False,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        tokenizer_class="PreTrainedTokenizerFast",
        model_max_length=2048,
    )
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------
# 3-4. model + training
# --------------------------------------------------------------------------------------


def token_stream(tok, docs: list[str], pairs: list[tuple[str, str]]):
    import numpy as np

    ids: list[int] = []
    for d in docs:
        ids += tok.encode(d).ids + [1]  # BOS from the post-processor, EOS appended
    for q, a in pairs:
        ids += tok.encode(f"{USER}{q}{ASSISTANT}{a}{EOS}").ids
    return np.asarray(ids, dtype=np.int64)


def train(
    stream, steps: int, batch: int, seq: int, lr: float, embed_lr: float, wd: float, log
) -> tuple[object, list[float]]:
    import numpy as np
    import torch
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)

    cfg = DeepseekV3Config(**MODEL_CONFIG)
    model = DeepseekV3ForCausalLM(cfg).float()
    # A non-zero, fixed aux-free load-balancing bias, so the exp_probs_b path is exercised.
    g = torch.Generator().manual_seed(SEED + 1)
    for layer in model.model.layers[cfg.first_k_dense_replace :]:
        layer.mlp.gate.e_score_correction_bias.copy_(torch.randn(cfg.n_routed_experts, generator=g) * 0.05)

    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f}M params")
    # Two learning rates. With one lr of 3e-3 for everything the loss sat on the unigram
    # plateau (~6.1 after 200 steps): Adam grows the blocks' token-independent output much
    # faster than the 0.02-scale embeddings, and the final RMSNorm then drowns token
    # identity. A 10x higher lr for embeddings / lm_head and a lower one for the blocks
    # gets past the plateau within ~50 steps. No weight decay on norms (1-D tensors).
    io = [model.model.embed_tokens.weight, model.lm_head.weight]
    io_ids = {id(p) for p in io}
    mats = [p for p in model.parameters() if id(p) not in io_ids and p.dim() >= 2]
    vecs = [p for p in model.parameters() if id(p) not in io_ids and p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": mats, "lr": lr, "weight_decay": wd},
            {"params": vecs, "lr": lr, "weight_decay": 0.0},
            {"params": io, "lr": embed_lr, "weight_decay": wd},
        ],
        betas=(0.9, 0.95),
    )
    warm = max(1, min(30, steps // 15))

    def lr_at(s: int) -> float:
        if s < warm:
            return (s + 1) / warm
        p = (s - warm) / max(1, steps - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    rng = np.random.RandomState(SEED)
    losses: list[float] = []
    model.train()
    t0 = time.time()
    for step in range(steps):
        starts = rng.randint(0, len(stream) - seq - 1, size=batch)
        x = torch.from_numpy(np.stack([stream[s : s + seq] for s in starts]))
        out = model(input_ids=x, labels=x)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(out.loss.detach()))
        if step % 25 == 0 or step == steps - 1:
            log(f"step {step:4d} loss {losses[-1]:.3f} ({time.time() - t0:.0f}s)")
    model.eval()
    return model, losses


def save_hf(model, hf_dir: Path) -> None:
    import torch

    model.config.architectures = ["DeepseekV3ForCausalLM"]
    model.to(torch.bfloat16).save_pretrained(hf_dir, safe_serialization=True)
    cfg_path = hf_dir / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.update(EXTRA_CONFIG)
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    gen = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2, "do_sample": False}
    (hf_dir / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n", encoding="utf-8")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=450)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3, help="peak lr of the transformer blocks")
    ap.add_argument("--embed-lr", type=float, default=1e-2, help="peak lr of embeddings and lm_head")
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--refresh-corpus", action="store_true", help="re-snapshot corpus.txt from the repo")
    ap.add_argument("--out", type=Path, default=ARTIFACTS_DIR)
    args = ap.parse_args(argv)

    t_start = time.time()
    out: Path = args.out
    hf_dir = out / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[{time.time() - t_start:6.1f}s] {msg}", flush=True)

    corpus = out / "corpus.txt"
    if args.refresh_corpus or not corpus.exists():
        snapshot_corpus(corpus)
        log(f"corpus snapshotted: {corpus.stat().st_size} bytes")
    docs = load_corpus(corpus)
    pairs = chat_pairs(docs)
    log(f"corpus: {len(docs)} documents, {sum(map(len, docs))} chars, {len(pairs)} chat pairs")

    tok = train_tokenizer(docs + [f"{q}\n{a}" for q, a in pairs], MODEL_CONFIG["vocab_size"])
    assert tok.get_vocab_size() == MODEL_CONFIG["vocab_size"], tok.get_vocab_size()
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    save_tokenizer(tok, hf_dir)
    stream = token_stream(tok, docs, pairs)
    log(f"tokenizer: vocab {tok.get_vocab_size()}, {len(stream)} training tokens")

    t_train = time.time()
    model, losses = train(stream, args.steps, args.batch, args.seq, args.lr, args.embed_lr, args.weight_decay, log)
    train_s = time.time() - t_train
    save_hf(model, hf_dir)
    log(f"saved HF folder to {hf_dir}")

    gguf_path = convert_hf_to_gguf(
        hf_dir,
        out / "tiny-deepseek.gguf",
        outtype="q8_0",
        name=MODEL_NAME,
        extra_kv={"dsdeploy.note": "tiny test model; exercises the stack, not an assistant"},
    )
    log(f"wrote {gguf_path} ({gguf_path.stat().st_size / 1e6:.1f} MB)")

    info = {
        "model_name": MODEL_NAME,
        "params": sum(p.numel() for p in model.parameters()),
        "config": MODEL_CONFIG | EXTRA_CONFIG,
        "train": {
            "steps": args.steps,
            "lr": args.lr,
            "embed_lr": args.embed_lr,
            "weight_decay": args.weight_decay,
            "schedule": "linear warm-up min(30, steps/15), cosine to 10%",
            "grad_clip": 1.0,
            "threads": 1,
            "batch": args.batch,
            "seq": args.seq,
            "seed": SEED,
            "tokens_seen": args.steps * args.batch * args.seq,
            "corpus_tokens": int(len(stream)),
            "loss_first": round(losses[0], 4),
            "loss_last20_mean": round(sum(losses[-20:]) / 20, 4),
            "train_seconds": round(train_s, 1),
        },
        "build_seconds": round(time.time() - t_start, 1),
        "versions": _versions(),
        "sha256": {str(p.relative_to(out)): sha256(p) for p in [corpus, gguf_path, *sorted(hf_dir.iterdir())]},
    }
    (out / "build_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    log(f"done in {info['build_seconds']}s; loss {info['train']['loss_first']} -> {info['train']['loss_last20_mean']}")
    return 0


def _versions() -> dict[str, str]:
    import platform

    import gguf
    import tokenizers
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "gguf": getattr(gguf, "__version__", "0.19.0"),
    }


if __name__ == "__main__":
    raise SystemExit(main())
