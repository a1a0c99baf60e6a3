"""Errors the logic raises; each knows the HTTP status and message the API answers with.

The logic stays free of HTTP plumbing: it raises one of these and the handlers' exception handler
renders ``{"message", "error"}`` with the status (plus ``Retry-After`` where retrying helps).
"""

from __future__ import annotations

from http import HTTPStatus


class ApiError(Exception):
    status: HTTPStatus = HTTPStatus.BAD_GATEWAY
    error: str = "ApiError"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class BadRequestError(ApiError):
    status = HTTPStatus.BAD_REQUEST
    error = "BadRequest"


class PayloadTooLargeError(ApiError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    error = "PayloadTooLarge"


class UnsupportedMediaTypeError(ApiError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    error = "UnsupportedMediaType"


class InvalidRequestError(ApiError):
    """The body or a parameter does not match the schema."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    error = "ValidationError"


class ForbiddenError(ApiError):
    """The caller is authenticated but may not do this (a predict key on POST /feedback)."""

    status = HTTPStatus.FORBIDDEN
    error = "Forbidden"


class ResourceNotFoundError(ApiError):
    status = HTTPStatus.NOT_FOUND
    error = "NotFound"


class PreconditionMissingError(ApiError):
    """Something the user must create first (dataset pointer, source bundle)."""

    status = HTTPStatus.CONFLICT
    error = "PreconditionMissing"


class ConflictError(ApiError):
    """The same request is being processed right now (an Idempotency-Key in flight)."""

    status = HTTPStatus.CONFLICT
    error = "Conflict"


class IdempotencyKeyReusedError(ApiError):
    """An Idempotency-Key came back with another request body."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    error = "IdempotencyKeyReused"


class QuotaExceededError(ApiError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    error = "QuotaExceeded"


class ModelFailedError(ApiError):
    """The model container raised or answered something that is not a valid prediction."""

    status = HTTPStatus.BAD_GATEWAY
    error = "ModelError"


class UpstreamError(ApiError):
    """An AWS service answered with an error that is neither the caller's fault nor transient."""

    status = HTTPStatus.BAD_GATEWAY
    error = "UpstreamError"


class ServiceUnavailableError(ApiError):
    """Endpoint missing / not in service, or AWS throttled us: retrying later can succeed."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    error = "ServiceUnavailable"


class UpstreamTimeoutError(ApiError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    error = "Timeout"


class ConfigurationError(ApiError):
    """The function's environment is incomplete: an operator has to fix the stack, not the caller."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    error = "ConfigurationError"
