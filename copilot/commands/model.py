"""``copilot model ...``: prepare the embedding model (the ONNX export of the bundled MiniLM)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from copilot.commands import _common


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "model", help="prepare the embedding model", description=__doc__
    )
    kinds = parser.add_subparsers(dest="model_kind", metavar="ACTION")
    export = kinds.add_parser(
        "export",
        help="export the bundled MiniLM to ONNX (fp32 and int8) in the data directory",
        description=(
            "Export the bundled all-MiniLM-L6-v2 to ONNX with torch and quantise it to int8 with "
            "ONNX Runtime, under DATA_DIR/models/minilm-onnx with a manifest. Does nothing when a "
            "valid export is already there; rebuilds one whose files or manifest do not match. "
            "The onnx backend does this itself on first use; run it ahead to keep that first "
            "start fast."
        ),
    )
    export.add_argument(
        "--variant",
        choices=("int8", "fp32", "all"),
        default=None,
        help="which model file to produce (default: the default variant of the onnx backend)",
    )
    export.add_argument("--force", action="store_true", help="rebuild even when the cache is valid")
    export.add_argument("--quiet", action="store_true", help="print nothing unless it fails")
    export.add_argument("--json", action="store_true", help="print one JSON object")
    export.set_defaults(func=run_export)

    def show_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=show_help)


def run_export(args: argparse.Namespace) -> int:
    from copilot.cli import UserError
    from copilot.services import embedders

    if args.variant == "all":
        variants: tuple[str, ...] = embedders.ONNX_VARIANTS
    else:
        variants = (args.variant or embedders.DEFAULT_ONNX_VARIANT,)
    chatty = not (args.quiet or args.json)

    def progress(message: str) -> None:
        if chatty:
            print(f"{message}...", file=sys.stderr, flush=True)

    try:
        result = embedders.export_onnx(
            _common.data_dir(args), variants=variants, force=args.force, progress=progress
        )
    except ImportError as exc:
        raise UserError(f"exporting the model needs torch and transformers ({exc})") from exc
    except OSError as exc:
        raise UserError(f"cannot write the ONNX model: {exc}") from exc

    files = {
        variant: {key: entry.get(key) for key in ("file", "size", "sha256")}
        for variant, entry in (result.manifest.get("variants") or {}).items()
    }
    if args.json:
        _common.print_json(
            {
                "model_dir": str(result.model_dir),
                "built": result.built,
                "reason": result.reason,
                "seconds": round(result.seconds, 3),
                "variants": files,
                "default_variant": embedders.DEFAULT_ONNX_VARIANT,
                "opset": result.manifest.get("opset"),
                "torch_version": result.manifest.get("torch_version"),
                "onnxruntime_version": result.manifest.get("onnxruntime_version"),
                "created": result.manifest.get("created"),
            }
        )
    elif not args.quiet:
        sizes = ", ".join(
            f"{variant} {entry['size'] / 1e6:.0f} MB" for variant, entry in files.items()
        )
        if result.built:
            print(
                f"exported {embedders.MODEL_NAME} to {result.model_dir} ({sizes}) in "
                f"{result.seconds:.1f} s ({result.reason})"
            )
        else:
            print(f"already up to date: {result.model_dir} ({sizes}); nothing to do")
    return 0
