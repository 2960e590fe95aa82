"""`GET /jobs/<id>`: a job's progress as JSON, for the pages that poll it.

Any web worker can answer (the progress is in the database). A job is shown
to whoever submitted it and to the role that owns its kind of work.
"""

from __future__ import annotations

from flask import Blueprint, abort, jsonify
from flask_login import current_user, login_required

from kernel.jobs import get_job
from kernel.web.auth import db_session

bp = Blueprint("jobs", __name__)
# Which role may watch which kind of job (besides the person who submitted it).
KIND_ROLES = {"issue_batch": "registrar", "index_upload": "instructor", "build_report": "instructor"}


@bp.get("/jobs/<job_id>")
@login_required
def job_progress(job_id: str):
    job = get_job(db_session(), job_id)
    if job is None:
        abort(404)
    if job.created_by != current_user.email and not current_user.can(KIND_ROLES.get(job.kind, "admin")):
        abort(404)
    return jsonify(job.as_dict())
