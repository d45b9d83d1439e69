"""Chat templating and tokenization in the API process, so limits are checked before a request
queues (a prompt that is too long gets its 413 at once, not after waiting for a slot).

It loads the GGUF's vocabulary only (llama.cpp `vocab_only`: no weights, milliseconds) and renders
the GGUF's own `tokenizer.chat_template` with Jinja2, as llama-cpp-python and Transformers do.
"""

from __future__ import annotations

import ctypes
from datetime import datetime
from typing import Any

from dsdeploy.serve.errors import bad_request

# Used when the GGUF carries no chat template: DeepSeek's plain-text convention.
FALLBACK_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n\n"
    "{% else %}Assistant: {{ m['content'] }}{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def _raise(message: str) -> None:
    raise bad_request(f"chat template error: {message}", param="messages")


class PromptBuilder:
    def __init__(self, model_path: str) -> None:
        import llama_cpp
        from llama_cpp import _internals as internals

        self._lib = llama_cpp
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self._model = internals.LlamaModel(path_model=str(model_path), params=params, verbose=False)
        self._vocab = self._model.vocab
        meta = self._model.metadata()
        self.n_ctx_train = self._model.n_ctx_train()
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        bos_id = llama_cpp.llama_vocab_bos(self._vocab)
        eos_id = llama_cpp.llama_vocab_eos(self._vocab)
        self.bos_token = self._piece(bos_id) if bos_id >= 0 else ""
        self.eos_token = self._piece(eos_id) if eos_id >= 0 else ""
        self.chat_template = meta.get("tokenizer.chat_template") or FALLBACK_TEMPLATE
        self.has_own_template = "tokenizer.chat_template" in meta

        import jinja2
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(
            loader=jinja2.BaseLoader(),
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[jinja2.ext.loopcontrols],
        )
        import json

        env.filters["tojson"] = lambda x, indent=None, **_: json.dumps(x, ensure_ascii=False, indent=indent)
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda f: datetime.now().strftime(f)
        self._template = env.from_string(self.chat_template)

    def _piece(self, token: int) -> str:
        buf = ctypes.create_string_buffer(256)
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, 256, 0, True)
        return buf.raw[: max(0, n)].decode("utf-8", errors="replace")

    def tokenize(self, text: str, add_bos: bool | None = None, special: bool = False) -> list[int]:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:  # JSON may carry a lone surrogate ("\ud800")
            raise bad_request(
                f"the prompt is not valid Unicode: {exc.reason} at character {exc.start}",
                param="prompt",
                code="invalid_value",
            ) from None
        add = self.add_bos if add_bos is None else add_bos
        cap = len(data) + 8
        buf = (self._lib.llama_token * cap)()
        n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, cap, add, special)
        if n < 0:
            cap = -n
            buf = (self._lib.llama_token * cap)()
            n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, cap, add, special)
            if n < 0:
                raise bad_request("the prompt could not be tokenized", param="prompt")
        return buf[:n]

    def render_chat(self, messages: list[dict[str, Any]]) -> str:
        try:
            return self._template.render(
                messages=messages,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                add_generation_prompt=True,
            )
        except Exception as exc:  # a template error is the request's fault (bad roles etc.)
            if hasattr(exc, "status"):
                raise
            raise bad_request(f"chat template error: {exc}", param="messages") from None

    def chat_tokens(self, messages: list[dict[str, Any]]) -> list[int]:
        text = self.render_chat(messages)
        # The template usually writes the BOS text itself; don't add a second one.
        add_bos = self.add_bos and not (self.bos_token and text.startswith(self.bos_token))
        return self.tokenize(text, add_bos=add_bos, special=True)

    def vocab_size(self) -> int:
        return self._lib.llama_vocab_n_tokens(self._vocab)
