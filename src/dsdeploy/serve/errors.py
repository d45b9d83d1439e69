"""OpenAI-style API errors: `{"error": {"message", "type", "param", "code"}}` with an HTTP status."""

from __future__ import annotations

import json
from typing import Any


class APIError(Exception):
    """An error the server returns to the client as an OpenAI-style body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def sse(self) -> bytes:
        """The error as one server-sent event (what OpenAI-compatible servers send mid-stream)."""
        return b"data: " + json.dumps(self.body()).encode() + b"\n\n"


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def unauthorized(message: str = "Invalid or missing API key.") -> APIError:
    return APIError(
        401,
        message,
        type="authentication_error",
        code="invalid_api_key",
        headers={"WWW-Authenticate": "Bearer"},
    )


def not_found(message: str, param: str | None = None, code: str = "not_found") -> APIError:
    return APIError(404, message, type="not_found_error", param=param, code=code)


def too_large(message: str, param: str | None = None, code: str = "prompt_too_long") -> APIError:
    return APIError(413, message, param=param, code=code)


def overloaded(message: str) -> APIError:
    return APIError(429, message, type="rate_limit_error", code="too_many_requests", headers={"Retry-After": "1"})


def unavailable(message: str, code: str = "service_unavailable") -> APIError:
    return APIError(503, message, type="server_error", code=code, headers={"Retry-After": "1"})


def engine_failed(message: str) -> APIError:
    return APIError(503, message, type="server_error", code="engine_error")
