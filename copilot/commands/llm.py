"""``copilot llm check``: test the connection to the configured LLM endpoint.

Sends one tiny chat completion to the endpoint in the settings (``[llm]`` in settings.toml; the
API key from the system keyring) and prints the model that answered and the round-trip time, or
what went wrong in words: no endpoint set, connection refused, the key refused (401), a timeout.
``--endpoint``, ``--model`` and ``--timeout`` override the settings for this one check.
"""

from __future__ import annotations

import argparse
from typing import Any

from copilot.commands import _common


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "llm",
        help="the optional language-model backend (connection check)",
        description="The optional OpenAI-compatible language-model backend.",
    )
    kinds = parser.add_subparsers(dest="llm_kind", metavar="KIND")
    check = kinds.add_parser(
        "check",
        help="test the connection: print the model and the round-trip time",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--endpoint", metavar="URL", help="API base URL (default: the settings')")
    check.add_argument("--model", help="model name (default: the settings')")
    check.add_argument("--timeout", type=float, metavar="S", help="seconds (default: settings')")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(func=run_check)

    def show_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=show_help)


def run_check(args: argparse.Namespace) -> int:
    """Run ``copilot llm check``; 0 when the endpoint answered, 1 when it did not."""
    import sys

    from copilot.cli import UserError
    from copilot.services.llm import LlmError, LlmErrorKind, client_from_settings
    from copilot.services.secrets import SecretStore
    from copilot.services.settings import LlmSettings, load_settings

    loaded = load_settings(_common.data_dir(args))
    settings = loaded.settings.llm
    changes: dict[str, Any] = {}
    if args.endpoint is not None:
        changes["endpoint"] = args.endpoint
    if args.model is not None:
        changes["model"] = args.model
    if args.timeout is not None:
        changes["timeout_s"] = args.timeout
    if changes:
        try:
            settings = LlmSettings.model_validate({**settings.model_dump(), **changes})
        except ValueError as exc:
            raise UserError(f"bad option: {_first_error(exc)}") from None
    if not settings.endpoint:
        raise UserError(
            "no LLM endpoint is set: set [llm] endpoint in the settings (or pass --endpoint URL)"
        )
    report: dict[str, Any] = {
        "endpoint": settings.endpoint,
        "enabled": settings.enabled,
        "ok": False,
    }
    with client_from_settings(settings, SecretStore()) as client:
        try:
            if not client.model:
                models = client.list_models()
                hint = f" (the endpoint offers: {', '.join(models[:8])})" if models else ""
                raise LlmError(
                    LlmErrorKind.NOT_CONFIGURED,
                    f"No LLM model name is set: set [llm] model or pass --model{hint}.",
                )
            reply = client.check()
        except LlmError as exc:
            report.update(error=exc.kind.value, status=exc.status, message=exc.message)
            if args.json:
                _common.print_json(report)
            else:
                print(f"copilot llm check: {exc.message}", file=sys.stderr)
            return 1
    report.update(
        ok=True,
        model=reply.model,
        round_trip_ms=round(reply.elapsed_ms, 1),
        answer=reply.content.strip()[:40],
    )
    if args.json:
        _common.print_json(report)
        return 0
    print(f"OK: {settings.endpoint} answered with model {reply.model} in {reply.elapsed_ms:.0f} ms")
    if not settings.enabled:
        print("Note: the backend is turned off in the settings ([llm] enabled = false).")
    return 0


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}"
    return str(exc)
