"""Upload a folder through the submissions page, in a process of its own, so a
test can measure (and, past its limit, kill) that process and its children.

    python -m tests.upload_probe DATA_DIR FOLDER

The process is what `make run` runs: the web app with its embedded job worker.
The Flask test client logs in as an instructor, makes a course and an
assignment, uploads one ordinary file first (so the model is loaded, as in a
process that has served uploads before: the issue's 635 MB), then every file
of FOLDER in one upload, and prints one JSON object: the finished job and this
process's memory before and after the hostile upload.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from tests.test_submissions_web import INDEPENDENT, _wait, log_in, make_user, token_of


def _rss_mb() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) // 1024
    return out


def main(data_dir: str, folder: str) -> int:
    from app import create_app
    from kernel.jobs.worker import EmbeddedWorker

    app = create_app({"TESTING": True, "data_dir": Path(data_dir), "SECRET_KEY": "probe",
                      "rpc_url": "http://127.0.0.1:9"})  # uploads never reach the chain
    EmbeddedWorker(app, workers=1, reap_every=1.0).start()
    make_user(app.test_cli_runner(), "prof@uni.edu")
    client = app.test_client()
    log_in(client, "prof@uni.edu")
    token = token_of(client, "/submissions/")
    course_url = client.post("/submissions/courses", data={"code": "BIO1", "csrf_token": token}).location
    assignment_url = client.post(course_url + "/assignments", data={"name": "reefs", "csrf_token": token}).location

    def upload(files: list[tuple[bytes, str]]) -> dict:
        response = client.post(assignment_url + "/uploads", content_type="multipart/form-data",
                               headers={"Accept": "application/json", "X-Requested-With": "fetch"},
                               data={"csrf_token": token, "student_from_filename": "y",
                                     "files": [(io.BytesIO(data), name) for data, name in files]})
        assert response.status_code == 202, response.get_data(as_text=True)
        return _wait(client, response.get_json()["progress_url"])

    warm = upload([(INDEPENDENT.encode(), "warmup_sailing.txt")])
    before = _rss_mb()
    job = upload([(path.read_bytes(), path.name) for path in sorted(Path(folder).iterdir())])
    page = client.get(assignment_url).get_data(as_text=True)
    print(json.dumps({"warmup": warm, "job": job, "before": before, "after": _rss_mb(), "page": page}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
