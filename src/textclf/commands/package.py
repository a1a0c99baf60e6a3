"""``textclf package``: build the SageMaker ``model.tar.gz`` for one runtime (fidelity-gated)."""

from __future__ import annotations

import argparse
from pathlib import Path

from textclf.config import artifacts_dir


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from textclf.packaging import build, fidelity

    parser = subparsers.add_parser(
        "package",
        help="build model.tar.gz (torch, onnx-fp32 or onnx-int8) for SageMaker and the local endpoint",
        description="Export the trained model (ONNX, int8 dynamic quantisation), check it against the "
        "torch model on the validation split, and write model.tar.gz: model files at the root, "
        "code/inference.py and code/requirements.txt. Refuses (exit 2, nothing written) when the "
        "ONNX runtime disagrees with torch beyond the thresholds. An archive built from the same "
        "inputs is reused.",
    )
    # Path defaults resolve when the command runs: --help shows <artifacts>, not this machine's path.
    parser.add_argument(
        "--model", type=Path, default=None, help="trained model directory (default: <artifacts>/model)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="archive to write (default: <artifacts>/package/model.tar.gz)"
    )
    parser.add_argument(
        "--runtime", choices=build.RUNTIMES, default=build.DEFAULT_RUNTIME, help="default: %(default)s"
    )
    parser.add_argument(
        "--validation-data",
        type=Path,
        default=None,
        help="split dir, .parquet or raw corpus file for the fidelity check "
        "(default: <artifacts>/data/validation)",
    )
    defaults = fidelity.Thresholds()
    parser.add_argument(
        "--max-accuracy-drop",
        type=float,
        default=defaults.max_accuracy_drop,
        help="largest drop of accuracy and of macro-F1 vs torch, a fraction: 0.002 = 0.2 points "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-worst-case-drop",
        type=float,
        default=defaults.max_worst_case_drop,
        help="largest upper 95%% bound of the paired accuracy drop (default: %(default)s)",
    )
    parser.add_argument(
        "--max-ece-increase",
        type=float,
        default=defaults.max_ece_increase,
        help="largest rise of the expected calibration error (default: %(default)s)",
    )
    parser.add_argument(
        "--no-cascade",
        action="store_true",
        help="do not record a confidence cascade (the lexical head answering the headlines it is "
        "sure of); TEXTCLF_CASCADE=off also switches it off at serving time",
    )
    parser.add_argument(
        "--fidelity-rows",
        type=int,
        default=fidelity.SAMPLE_SIZE,
        help="validation rows compared, a seeded random sample (default: %(default)s)",
    )
    parser.add_argument(
        "--vendor-wheels",
        choices=build.VENDOR_MODES,
        default="auto",
        help="ONNX runtimes: ship the onnxruntime wheels for the inference container in code/wheels "
        "(yes), install from PyPI at container start (no), or vendor when possible (auto, default)",
    )
    parser.add_argument(
        "--wheel-dir",
        type=Path,
        default=None,
        help="take the wheels from here (default: the wheel cache, downloading what it lacks)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the archive is up to date")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf.packaging import build_package, fidelity

    art = artifacts_dir()
    validation_data = args.validation_data or art / "data" / "validation"
    build_package(
        (args.model or art / "model").resolve(),
        (args.out or art / "package" / "model.tar.gz").resolve(),
        runtime=args.runtime,
        validation_data=validation_data.resolve() if args.runtime != "torch" else None,
        thresholds=fidelity.Thresholds(
            args.max_accuracy_drop, args.max_worst_case_drop, args.max_ece_increase
        ),
        cascade=not args.no_cascade,
        sample_size=args.fidelity_rows,
        vendor=args.vendor_wheels,
        wheel_dir=args.wheel_dir.resolve() if args.wheel_dir else None,
        force=args.force,
    )
    return 0
