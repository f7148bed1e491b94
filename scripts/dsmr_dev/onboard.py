"""Onboard a fresh Home Assistant through its API: owner dev / dev, defaults for the rest.

Used by scripts/develop; waits for Home Assistant to answer first. Does nothing when onboarding
is done already.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any
import urllib.error
import urllib.parse
import urllib.request

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8123"
CLIENT_ID = BASE + "/"


def call(
    path: str, data: dict[str, Any] | None = None, token: str | None = None, *, form: bool = False
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = None
    if data is not None:
        body = urllib.parse.urlencode(data).encode() if form else json.dumps(data).encode()
        headers["Content-Type"] = (
            "application/x-www-form-urlencoded" if form else "application/json"
        )
    request = urllib.request.Request(BASE + path, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def main() -> int:
    deadline = time.monotonic() + 180
    while True:
        try:
            steps = call("/api/onboarding")
            break
        except urllib.error.URLError, ConnectionError, TimeoutError:
            if time.monotonic() > deadline:
                print("onboard: Home Assistant did not answer in 180 s", file=sys.stderr)
                return 1
            time.sleep(1)
    if all(step["done"] for step in steps):
        return 0
    code = call(
        "/api/onboarding/users",
        {
            "client_id": CLIENT_ID,
            "name": "Developer",
            "username": "dev",
            "password": "dev",
            "language": "en",
        },
    )["auth_code"]
    token = call(
        "/auth/token",
        {"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID},
        form=True,
    )["access_token"]
    call("/api/onboarding/core_config", {}, token)
    call("/api/onboarding/analytics", {}, token)
    call("/api/onboarding/integration", {"client_id": CLIENT_ID, "redirect_uri": CLIENT_ID}, token)
    print("onboard: created user dev / dev", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
