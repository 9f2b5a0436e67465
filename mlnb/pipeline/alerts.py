"""The pipeline's alerts: a JSON POST to the webhook ``alerts.webhook`` names, retried a
bounded number of times and never raising (an alert that cannot be delivered is recorded
in the decision, it does not fail the pipeline)."""

from __future__ import annotations

import json
import time
from typing import Callable


def send_webhook(url: str, payload: dict, timeout: float, retries: int, sleep: Callable[[float], None] = time.sleep) -> dict:
    """POST ``payload`` as JSON; retry a bounded number of times; never raise.

    Returns:
        ``{"delivered": bool, "attempts": n, "error": str | None}``.
    """
    import urllib.error  # here, not at the top: http.client and ssl are slow to import
    import urllib.request

    body = json.dumps(payload).encode()
    error = None
    for attempt in range(1, retries + 2):
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if 200 <= response.status < 300:
                    return {"delivered": True, "attempts": attempt, "error": None}
                error = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            error = str(getattr(exc, "reason", exc))
        if attempt <= retries:
            sleep(min(0.5 * 2 ** (attempt - 1), 4.0))
    return {"delivered": False, "attempts": retries + 1, "error": error}
