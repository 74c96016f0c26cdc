"""Reports of GAN studies, read from MLflow only: `python -m reports --experiment NAME`."""
from reports.build import ReportPaths, build_report
from reports.load import ReportError

__all__ = ["ReportError", "ReportPaths", "build_report"]
