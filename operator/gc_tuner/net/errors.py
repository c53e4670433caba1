"""The error tree of every source gc-tuner reads. Callers catch the most specific class they handle.

    SourceError                  anything that went wrong reading one source of one pod
    ├── SourceFormatError        the peer answered, but the document is malformed (names the field)
    └── FetchError               the request itself failed
        ├── UnreachableError     connection refused / reset / DNS / no route
        ├── FetchTimeoutError    connect or read timeout
        ├── AuthError            401 / 403 (wrong or missing token)
        ├── RejectedError        4xx the peer explains (e.g. 422: value outside the agent's bounds)
        ├── ResponseTooLargeError  the answer is longer than the source's byte limit
        └── ProtocolError        any other unexpected status or a broken HTTP exchange

Each error has a short CamelCase `reason`, used in GCPolicy status, Events and metric labels.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "FetchError",
    "FetchTimeoutError",
    "ProtocolError",
    "RejectedError",
    "ResponseTooLargeError",
    "SourceError",
    "SourceFormatError",
    "UnreachableError",
]


class SourceError(Exception):
    reason = "SourceError"

    def _set_message(self, where: str, message: str) -> None:
        """`message` is what went wrong, for status and Events; str() adds where, for logs."""
        self.message = message
        super().__init__(f"{where}: {message}")


class SourceFormatError(SourceError):
    """A malformed document. `source` names the format, `field` the offending field or line."""

    reason = "MalformedData"

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = source
        self.field = field
        self._set_message(f"{source}: {field}", message)


class FetchError(SourceError):
    reason = "FetchFailed"

    def __init__(self, url: str, message: str, *, status: int | None = None) -> None:
        self.url = url
        self._set_message(url, message)
        self.status = status


class UnreachableError(FetchError):
    reason = "Unreachable"


class FetchTimeoutError(FetchError):
    reason = "Timeout"


class AuthError(FetchError):
    reason = "AuthFailed"


class RejectedError(FetchError):
    reason = "Rejected"


class ResponseTooLargeError(FetchError):
    """The peer sent more than the byte limit; reading stopped there, so memory stays bounded."""

    reason = "ResponseTooLarge"


class ProtocolError(FetchError):
    reason = "ProtocolError"
