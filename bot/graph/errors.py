"""Graph errors as typed exceptions (the standard error body of
https://learn.microsoft.com/graph/errors).

Each class also inherits the fitting builtin, so ``except LookupError`` catches a 404.
Nothing here branches on message text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class GraphError(Exception):
    """A Graph request failed. Carries the Graph error code, message and request ids."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        client_request_id: str | None = None,
        date: str | None = None,
        body: Any = None,
        method: str | None = None,
        url: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.date = date
        self.body = body
        self.method = method
        self.url = url
        self.retry_after_s = retry_after_s
        super().__init__(message)

    def __str__(self) -> str:
        where = f"{self.method} {self.url} " if self.method else ""
        return (
            f"{where}-> {self.status} {self.code or ''}: {self.message} "
            f"(request-id {self.request_id}, client-request-id {self.client_request_id})"
        )


class GraphBadRequest(GraphError, ValueError):
    pass


class GraphUnauthorized(GraphError, PermissionError):
    pass


class GraphForbidden(GraphError, PermissionError):
    pass


class GraphNotFound(GraphError, LookupError):
    pass


class GraphConflict(GraphError):
    pass


class GraphThrottled(GraphError):
    """429 after the retry budget was spent."""


class GraphServerError(GraphError):
    pass


class GraphServiceUnavailable(GraphServerError):
    pass


class GraphGatewayTimeout(GraphServerError, TimeoutError):
    pass


class GraphConnectionError(GraphError, ConnectionError):
    """The request did not get an HTTP answer (connection refused, reset, timed out)."""


class TokenError(PermissionError):
    """An app-only token could not be obtained (bad secret, certificate, tenant ...)."""


class OperationFailed(Exception):
    """A commsOperation ended with status ``failed`` (or a 202 action ended badly).

    ``result_info`` is the operation's resultInfo (code, subcode, message).
    """

    def __init__(
        self, message: str, *, operation: Any = None, result_info: Any = None, call_id: str | None = None
    ) -> None:
        self.operation = operation
        self.result_info = result_info
        self.call_id = call_id
        detail = f" [{result_info}]" if result_info is not None else ""
        super().__init__(f"{message}{detail}")


class CallTerminated(OperationFailed):
    """The call ended while an operation was waiting for its outcome."""


class InvalidCallState(RuntimeError):
    """An action is not allowed in the call's current state (e.g. answer after answer)."""


_BY_STATUS: dict[int, type[GraphError]] = {
    400: GraphBadRequest,
    401: GraphUnauthorized,
    403: GraphForbidden,
    404: GraphNotFound,
    409: GraphConflict,
    429: GraphThrottled,
    503: GraphServiceUnavailable,
    504: GraphGatewayTimeout,
}


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str | None = None,
    url: str | None = None,
    retry_after_s: float | None = None,
    client_request_id: str | None = None,
) -> GraphError:
    """Build the typed exception for a non-2xx Graph answer."""
    parsed: Any = None
    code = message = date = None
    request_id = headers.get("request-id")
    inner_request_id = None
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = body.decode("utf-8", "replace")
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        err = parsed["error"]
        code = err.get("code") if isinstance(err.get("code"), str) else None
        message = err.get("message") if isinstance(err.get("message"), str) else None
        inner = err.get("innerError") or err.get("innererror") or {}
        if isinstance(inner, dict):
            inner_request_id = inner.get("request-id") or inner.get("requestId")
            date = inner.get("date")
            if message is None and isinstance(inner.get("message"), str):
                message = inner["message"]
    cls = _BY_STATUS.get(status) or (GraphServerError if status >= 500 else GraphError)
    return cls(
        message or f"HTTP {status}",
        status=status,
        code=code,
        request_id=request_id or inner_request_id,
        client_request_id=headers.get("client-request-id") or client_request_id,
        date=date,
        body=parsed,
        method=method,
        url=url,
        retry_after_s=retry_after_s,
    )
