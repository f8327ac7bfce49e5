#!/usr/bin/env python3
"""Replay a JSON Lines transcript into a running co-pilot's local ingest API.

An example connector using the standard library only: copy it into a helpdesk or softphone
integration and replace the file reading with that tool's events.

    copilot serve &                         # prints the URL
    python docs/connectors/replay_to_api.py knowledge/demo/some-chat.jsonl \\
        --token "$(copilot token)" --delay 0.5

Each line is a turn event ``{conversation_id, turn_id, role, text, ts?, is_final?}``. Malformed
lines are reported with their number and skipped; a 429 is waited out (``Retry-After``).
At the end the latest snapshot of every conversation is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


def call(
    base: str, token: str, method: str, path: str, body: Any = None, retries: int = 5
) -> tuple[int, Any]:
    """One API call; returns (status, decoded JSON). Waits out 429s, up to `retries` times."""
    data = json.dumps(body).encode("utf-8") if body is not None else None
    for _ in range(retries + 1):
        request = urllib.request.Request(base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            payload = json.loads(exc.read() or b"null")
            if exc.code == 429:
                time.sleep(float(exc.headers.get("Retry-After", "1")))
                continue
            return exc.code, payload
    return 429, {"error": "still rate limited"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transcript", help="a JSON Lines file of turn events")
    parser.add_argument("--url", default="http://127.0.0.1:8765", help="the API's base URL")
    parser.add_argument(
        "--token",
        default=os.environ.get("COPILOT_INGEST_TOKEN"),
        help="the bearer token (`copilot token`; default: $COPILOT_INGEST_TOKEN)",
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between turns")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("give --token or set COPILOT_INGEST_TOKEN (see `copilot token`)")
    base = args.url.rstrip("/")

    conversations: dict[str, int] = {}  # conversation id -> generation of its last change
    with open(args.transcript, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                print(f"{args.transcript}:{number}: skipped, not JSON ({exc.msg})", file=sys.stderr)
                continue
            status, body = call(base, args.token, "POST", "/v1/turns", event)
            if status == 401:
                print("the API refused the token (401); see `copilot token`", file=sys.stderr)
                return 1
            if status != 200:
                where = f"{body.get('field')}: {body.get('reason')}" if body else status
                print(f"{args.transcript}:{number}: skipped, {status} {where}", file=sys.stderr)
                continue
            result = body["results"][0]
            conversations[str(result["conversation_id"])] = int(result["generation"])
            if args.delay:
                time.sleep(args.delay)

    for conversation_id, generation in conversations.items():
        path = f"/v1/conversations/{urllib.parse.quote(conversation_id, safe='')}/snapshot"
        deadline = time.monotonic() + 10
        while True:
            status, snapshot = call(base, args.token, "GET", path)
            current = status == 200 and snapshot.get("generation", 0) >= generation
            if current or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # the analysis of the last turns is still running
        print(json.dumps(snapshot, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
