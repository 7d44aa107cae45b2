"""The API key: "Authorization: Bearer KEY" on every /v1 route when the server has one."""

import hmac

from app.openai_api.errors import ApiError


def check_api_key(authorization: bytes, api_key: str | None) -> None:
    """Raise ApiError(401) unless the server has no key or `authorization` carries it."""
    if api_key is None:
        return
    scheme, _, sent = authorization.strip().partition(b" ")
    if scheme.lower() == b"bearer" and hmac.compare_digest(sent.strip(), api_key.encode()):
        return
    reason = "Incorrect API key provided" if sent.strip() else "Missing API key"
    raise ApiError(
        401, f"{reason}: send it as 'Authorization: Bearer <key>'", "invalid_api_key",
        headers={"WWW-Authenticate": "Bearer"},
    )  # fmt: skip
