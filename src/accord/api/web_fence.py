"""Geofences drawn in the web app: the browser's ``{"op": "fence", ...}`` message.

:func:`fence_message` picks a fence message out of what a browser sends (larger than a chat
message may be: 200 vertices); :func:`fence_event` turns it into the ``u-d-f`` the web session
submits to the hub (:func:`accord.domain.drawn_fence.to_fence`), or says why it is refused so
the feed drops and counts it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from accord.cot.model import CotEvent
from accord.domain.drawn_fence import FenceRefused, to_fence
from accord.domain.geochat import Sender

MAX_FENCE_MESSAGE_BYTES = 16_384  # 200 vertices of [lat, lon] and the envelope


def fence_message(text: str) -> dict[str, Any] | None:
    """The message if it is a fence message that fits; None otherwise (chat, or junk the
    chat decoder drops and counts)."""
    if '"fence"' not in text[:200] or len(text.encode()) > MAX_FENCE_MESSAGE_BYTES:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("op") != "fence":
        return None
    return message


def fence_event(sender: Sender, message: dict[str, Any], now_ms: int) -> CotEvent | str:
    """The fence's event, or the reason it is refused."""
    try:
        return to_fence(
            sender,
            message.get("name"),
            message.get("trigger"),
            message.get("points"),
            now_ms,
            uuid.uuid4().hex[:16],
        )
    except FenceRefused as exc:
        return str(exc)
