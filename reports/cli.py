"""`python -m reports --experiment NAME`: the report of a study, from MLflow.

Every problem a user can cause (unreachable store, unknown experiment or run, no finished
trial) is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import os
import sys

EXIT_USAGE = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", required=True, help="MLflow experiment of the study")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<cwd>/mlflow.db)")
    parser.add_argument("--run-id", help="the study's parent run (default: the latest study in the experiment)")
    parser.add_argument("--out", help="output folder (default: ./reports_out/<experiment>)")
    parser.add_argument("--format", choices=("html", "md", "both"), default="both", help="default: both")
    parser.add_argument("--no-log", action="store_true", help="do not log the report to the parent run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep stderr for errors
    from reports.build import FORMATS, build_report
    from reports.load import ReportError
    from reports.store import default_tracking_uri

    formats = FORMATS if args.format == "both" else (args.format,)
    try:
        paths = build_report(args.tracking_uri or default_tracking_uri(), args.experiment, args.run_id,
                             args.out, formats, log_artifacts=not args.no_log)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    written = ", ".join(str(p) for p in (paths.html, paths.markdown) if p is not None)
    logged = "" if args.no_log else f"; logged to run {paths.parent_run_id} under {paths.artifact_path}/"
    print(f"report: {written} ({len(paths.images)} figures, {len(paths.csv_files)} CSV files){logged}")
    return 0
