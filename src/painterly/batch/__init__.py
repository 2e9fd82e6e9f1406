"""Many images in one go: the job list (:mod:`.jobs`), the record of what was done (:mod:`.manifest`) and
the contact sheet (:mod:`.sheet`). The ``painterly batch`` command (``painterly.cli.batch``) runs them,
locally or on a Ray cluster (``painterly.cli.batch_ray``)."""

from .jobs import Job, build_jobs, expand_paths, job_name, parse_sweep, read_job_file
from .manifest import MANIFEST_NAME, is_finished, read_manifest
from .sheet import PAGE_NAME, SHEET_NAME, contact_page, contact_sheet

__all__ = [
    "MANIFEST_NAME", "PAGE_NAME", "SHEET_NAME", "Job", "build_jobs", "contact_page", "contact_sheet",
    "expand_paths", "is_finished", "job_name", "parse_sweep", "read_job_file", "read_manifest",
]
