"""Synthetic prompts of a given length in tokens.

Two ways to hit the length:

* with the served model's tokenizer (a `tokenizer.json`, loaded with the `tokenizers` package):
  random words are encoded, cut to exactly N tokens and decoded back, so each prompt is N tokens
  as the model counts them (before any chat template or BOS the server adds);
* without one, by calibration against the server: two probe requests report
  `usage.prompt_tokens` for two word counts, and the word count for N tokens is solved from the
  straight line through them (which also absorbs the chat template / BOS overhead).

Prompts are random words from a fixed list, different for every request (seeded), so no two
requests share a prefix beyond the first word or two.
"""

from __future__ import annotations

import random
from pathlib import Path

from dsdeploy.errors import UserError

# Common short English words: nearly all are one token (with their leading space) in BPE vocabs.
WORDS = (
    "the of and to in is was for on are with as at be by this had not are but from or have an "
    "they which one you were her all she there would their we him been has when who will more no "
    "if out so said what up its about into than them can only other new some could time these two "
    "may then do first any my now such like our over man me even most made after also did many "
    "before must through back years where much your way well down should because each just those "
    "people how too little state good very make world still own see men work long get here between "
    "both life being under never day same another know while last might us great old year off come "
    "since against go came right used take three"
).split()


def random_words(n: int, rng: random.Random) -> str:
    """``n`` random words joined by spaces."""
    return " ".join(rng.choices(WORDS, k=n))


class TokenizerFile:
    """A `tokenizer.json` loaded with the optional `tokenizers` package."""

    def __init__(self, path: str | Path):
        p = Path(path)
        if p.is_dir():
            p = p / "tokenizer.json"
        if not p.is_file():
            raise UserError(f"tokenizer file not found: {p}")
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise UserError(
                "--tokenizer needs the `tokenizers` package (pip install tokenizers); "
                "leave --tokenizer out to calibrate the prompt length from the server's usage field"
            ) from exc
        try:
            self._tok = Tokenizer.from_file(str(p))
        except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
            raise UserError(f"cannot load tokenizer {p}: {exc}") from exc

    def count(self, text: str) -> int:
        """Tokens in ``text`` (no special tokens added)."""
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def exact(self, target: int, rng: random.Random) -> str:
        """A random-word text of exactly ``target`` tokens (re-encoding checked; the closest
        found after a few tries otherwise)."""
        text = random_words(max(1, target), rng)
        best = text
        for _ in range(6):
            ids = self._tok.encode(text, add_special_tokens=False).ids
            while len(ids) < target:
                text += " " + random_words(max(1, target - len(ids)), rng)
                ids = self._tok.encode(text, add_special_tokens=False).ids
            text = self._tok.decode(ids[:target])
            best = text
            if self.count(text) == target:
                return text
        return best


class PromptSource:
    """Makes the i-th prompt of a run: unique, deterministic for a seed, ``words`` words long
    (calibrated) or exactly ``target`` tokens (tokenizer)."""

    def __init__(self, target_tokens: int, seed: int = 0, tokenizer: TokenizerFile | None = None):
        self.target = target_tokens
        self.seed = seed
        self.tokenizer = tokenizer
        self.words = max(1, target_tokens)  # replaced by calibration
        self.tokens_per_prompt: float | None = None  # what the server reports, when known
        self._cache: dict[int, str] = {}

    def prompt(self, i: int) -> str:
        if i in self._cache:
            return self._cache[i]
        rng = random.Random(self.seed * 1_000_003 + i)
        if self.tokenizer is not None:
            text = self.tokenizer.exact(self.target, rng)
        else:
            text = random_words(self.words, rng)
        if len(self._cache) < 4096:
            self._cache[i] = text
        return text
