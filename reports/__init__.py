"""Reports of GAN studies, read from MLflow only: `python -m reports --experiment NAME`."""
from reports.build import ReportPaths, build_report
from reports.load import ReportError


def metrics_read() -> set[str]:
    """Every metric name the report looks for in a trial's run (without the final/ prefix)."""
    from reports import load, modes, plots, tables

    return ({*load.FID_METRICS, *(column.metric for column in tables.IMBALANCE_COLUMNS)}
            | {metric for metric, _, _ in modes.COLUMNS}
            | {name for real, fake, _ in plots.D_OUTPUT_HISTORIES for name in (real, fake)})


__all__ = ["ReportError", "ReportPaths", "build_report", "metrics_read"]
