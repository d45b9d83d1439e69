"""The request and response schemas of `dsdeploy serve`, as pydantic models, for `/openapi.json`.

The two generation endpoints check their bodies by hand (dsdeploy.serve.app.Server: a direct path
past FastAPI, for speed), so these models are not what validates a request: they describe what
that code accepts and returns, and tests/test_serve_openapi.py fuzzes the server against them.
Bounds here are the bounds the hand checks apply (keep the two in step).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_STOPS = 16  # OpenAI allows 4 stop sequences, vLLM any number; 16 bounds the per-token search
ROLES = ("system", "developer", "user", "assistant", "tool")


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool | None = None


class _Sampling(BaseModel):
    """Fields both generation endpoints take. Unknown fields are ignored; `logprobs`,
    `top_logprobs`, `tools`, `functions`, `suffix`, `echo` and `best_of` > 1 get 400 `unsupported`."""

    model_config = ConfigDict(extra="allow")
    model: str | None = Field(None, description="The served model name (or its GGUF file name).")
    max_tokens: int | None = Field(None, ge=1, description="At most --max-tokens-limit; prompt + it <= n_ctx.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Wins over max_tokens.")
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=-1, le=INT32_MAX, description="0 or -1: off.")
    min_p: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    repetition_penalty: float | None = Field(None, ge=0.0, le=10.0, allow_inf_nan=False)
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
    stop: str | Annotated[list[str], Field(max_length=MAX_STOPS)] | None = None
    n: int | None = Field(None, ge=1, le=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    ignore_eos: bool | None = None
    min_tokens: int | None = Field(None, ge=0, description="Must not exceed the maximum tokens.")


class ChatCompletionRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)


class CompletionRequest(_Sampling):
    prompt: (
        str
        | Annotated[list[int], Field(min_length=1)]
        | Annotated[list[str], Field(min_length=1, max_length=1)]
        | Annotated[list[Annotated[list[int], Field(min_length=1)]], Field(min_length=1, max_length=1)]
    ) = Field(
        description="A string, or token ids (0 .. vocabulary size - 1); a list holding one of those is one prompt. "
        "One prompt per request."
    )


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every error the server returns, whatever the status (OpenAI's shape)."""

    error: ErrorBody


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatMessage
    logprobs: None
    finish_reason: str


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: None
    finish_reason: str


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    root: str
    max_model_len: int


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class SlotInfo(BaseModel):
    slot: int
    state: Literal["starting", "idle", "busy", "dead", "stopped"]
    request_id: str | None
    restarts: int


class Health(BaseModel):
    status: Literal["ok", "degraded", "draining", "unavailable"]
    model: str
    running: int
    waiting: int
    slots: list[SlotInfo]


REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/completions": CompletionRequest,
}

# One server-sent event (OpenAPI 3.1: a text/event-stream `schema` describes each event)
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "description": "A JSON chunk (`chat.completion.chunk` / `text_completion`), an error "
            '`{"error": {...}}`, or `[DONE]` (always last).',
        }
    },
}

SSE_DESCRIPTION = (
    "With `stream: true`: `text/event-stream`, one `data: {json}` event per chunk, then `data: [DONE]`. "
    'An error after the stream started is one `data: {"error": {...}}` event (the error shape) then `data: [DONE]`.'
)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these statuses, all with the OpenAI error body."""
    why = {
        400: "Bad JSON, a bad or unsupported field, or a limit (max_tokens, context length).",
        401: "Missing or wrong API key (when the server has one).",
        404: "Unknown model or path.",
        405: "Method not allowed (see the Allow header).",
        408: "The request head or body did not arrive in time.",
        413: "The body or the prompt is too large.",
        429: "Running + queued requests are at --max-concurrency.",
        503: "Draining for shutdown, or the engine failed the request.",
    }
    return {s: {"model": ErrorResponse, "description": why[s]} for s in statuses}
