"""Submissions over time: courses, assignments, uploads, the persistent
passage index, reports and their anchoring. Plain functions over a
SQLAlchemy session (no Flask), called by the web pages, the CLI and the tests.

The detection itself (extraction, segmentation, fingerprints, paraphrase
matching, anomalies) is the detection core's; this module decides *what* is
compared with what, keeps every passage's embedding so nothing is embedded
twice, and keeps the results.

The persistent index lives under ATTEST_DATA_DIR/index
(one directory per embedding model, `<model id>/`, so vectors never mix):
- `cache/` maps the sha256 of a passage's text to its embedding; every
  process reads the same append-only files, so a passage is embedded once
  however many assignments, uploads, reports or restarts see it;
- `c<course>/a<assignment>/` and `c<course>/sources/` are partitions: the
  passages (sentence windows) of the submissions and sources there, with
  their character spans and vectors, appended as texts arrive (adding one
  submission never touches the others). A partition is searched exactly by
  default; it is the unit that moves to a server engine when one machine's
  memory is not enough.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from filelock import FileLock
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from db import utcnow
from plagiarism import audit_anchor
from plagiarism.store import (
    REPORT_ANCHOR_FAILED,
    REPORT_ANCHORED,
    REPORT_UNANCHORED,
    UPLOAD_DONE,
    UPLOAD_FAILED,
    UPLOAD_RUNNING,
    Assignment,
    Course,
    Report,
    Review,
    ScoreRow,
    Source,
    Submission,
    UploadFile,
    UploadJob,
)

DIM = 384
# Above this many reference sources, a report compares each submission only
# with the sources whose passages the index finds close to its own.
SOURCE_CANDIDATE_LIMIT = 40
Progress = Callable[[int, int, str], None]


class ServiceError(ValueError):
    """Something the user asked for that cannot be done; the message says why."""


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


def default_index_dir() -> Path:
    from config import Settings

    return Settings.from_env().data_dir / "index"


# ============================================================================ the index


def passage_key(text: str) -> str:
    """Content hash of a passage, white space normalised (as it is embedded)."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


class _AppendOnlyVectors:
    """Rows of float32 vectors plus one JSON line each, appended under a file
    lock and re-read incrementally, so several processes share one copy."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(str(self.dir / ".lock"))
        self.meta_path = self.dir / "passages.jsonl"
        self.vec_path = self.dir / "vectors.f32"
        self.meta: list[dict] = []
        self._chunks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = np.zeros((0, DIM), np.float32)
        self._meta_offset = 0
        self._vec_rows = 0

    def refresh(self) -> None:
        """Read what other processes appended since the last look."""
        with self.lock:
            self._read_tail()

    def _read_tail(self) -> None:
        if not self.meta_path.exists():
            return
        with open(self.meta_path, "rb") as fh:
            fh.seek(self._meta_offset)
            tail = fh.read()
        lines = tail[: tail.rfind(b"\n") + 1].splitlines(keepends=True)
        if not lines:
            return
        flat = np.fromfile(self.vec_path, dtype=np.float32, count=len(lines) * DIM,
                           offset=self._vec_rows * DIM * 4)
        rows = flat[: (flat.size // DIM) * DIM].reshape(-1, DIM)
        lines = lines[: rows.shape[0]]  # a writer that died between the two writes
        new_meta = [json.loads(line) for line in lines]
        self._meta_offset += sum(len(line) for line in lines)
        self._vec_rows += rows.shape[0]
        self.meta.extend(new_meta)
        self._chunks.append(rows)
        self._matrix = None
        self._on_new(new_meta, self._vec_rows - rows.shape[0])

    def _on_new(self, meta: list[dict], first_row: int) -> None:
        """Hook for subclasses that keep their own lookup tables."""

    def _append(self, meta: list[dict], vectors: np.ndarray) -> None:
        """Append rows; the caller holds the lock and has refreshed."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, DIM)
        with open(self.vec_path, "ab") as fh:
            # Vectors go first and the JSON line commits them; rows a crashed
            # writer left without their line are cut off before appending.
            fh.truncate(self._vec_rows * DIM * 4)
            fh.write(vectors.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        with open(self.meta_path, "ab") as fh:
            fh.write(b"".join(json.dumps(m, separators=(",", ":")).encode() + b"\n" for m in meta))
            fh.flush()
            os.fsync(fh.fileno())
        self._read_tail()

    @property
    def matrix(self) -> np.ndarray:
        if self._matrix is None:
            self._matrix = np.concatenate(self._chunks) if self._chunks else np.zeros((0, DIM), np.float32)
            self._chunks = [self._matrix]
        return self._matrix

    def __len__(self) -> int:
        return self._vec_rows


class EmbeddingCache(_AppendOnlyVectors):
    """sha256(passage) -> embedding, shared by every partition and process."""

    def __init__(self, directory: Path):
        super().__init__(directory)
        self.rows: dict[str, int] = {}
        self.encoded = 0  # passages this object had the model embed

    def _on_new(self, meta: list[dict], first_row: int) -> None:
        for i, m in enumerate(meta):
            self.rows.setdefault(m["k"], first_row + i)

    def encode(self, texts: Sequence[str], encoder: Encoder | Callable[[], Encoder]) -> np.ndarray:
        """Embeddings of `texts`, embedding only passages never seen before.

        `encoder` may be a factory, so a fully cached call never loads the model.
        """
        keys = [passage_key(t) for t in texts]
        self.refresh()
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self.rows}
        if missing:
            model = encoder() if callable(encoder) and not hasattr(encoder, "encode") else encoder
            todo = list(missing.items())
            vectors = model.encode([t for _, t in todo])
            with self.lock:
                self._read_tail()
                fresh = [(i, k) for i, (k, _) in enumerate(todo) if k not in self.rows]
                if fresh:
                    self._append([{"k": k} for _, k in fresh], vectors[[i for i, _ in fresh]])
            self.encoded += len(todo)
        if not keys:
            return np.zeros((0, DIM), np.float32)
        with self.lock:  # another thread of this process may be appending
            return self.matrix[[self.rows[k] for k in keys]]


class Partition(_AppendOnlyVectors):
    """The passages of one course/assignment (or a course's sources)."""

    def __init__(self, directory: Path):
        super().__init__(directory)
        self.docs: set[str] = set()

    def _on_new(self, meta: list[dict], first_row: int) -> None:
        self.docs.update(m["doc"] for m in meta)

    def add(self, doc: str, spans: Sequence[tuple[int, int]], vectors: np.ndarray) -> bool:
        """Add one document's passages unless it is there already."""
        with self.lock:
            self._read_tail()
            if doc in self.docs or not len(spans):
                return False
            self._append([{"doc": doc, "s": int(s), "e": int(e)} for s, e in spans], vectors)
        return True

    def search(self, queries: np.ndarray, k: int = 5) -> list[list[tuple[float, dict]]]:
        """Exact cosine search (rows are normalised): the k best passages per query."""
        self.refresh()
        matrix = self.matrix
        if not len(matrix) or not len(queries):
            return [[] for _ in range(len(queries))]
        sims = queries @ matrix.T
        k = min(k, matrix.shape[0])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out = []
        for qi, row in enumerate(top):
            order = row[np.argsort(-sims[qi, row])]
            out.append([(float(sims[qi, j]), self.meta[j]) for j in order])
        return out


class PassageIndex:
    """The persistent, partitioned passage index under one directory.

    Vectors from different models (or backends: the int8 ONNX graph and the
    fp32 reference agree to cosine 0.99, not exactly) never mix: the cache
    and the partitions live under a directory named by the embedder's
    `model_id`, so switching backends starts a fresh, consistent space.
    """

    def __init__(self, root: Path, encoder: Encoder | None = None):
        self.root = Path(root)
        self._encoder = encoder
        self._space: Path | None = None
        self._cache: EmbeddingCache | None = None
        self._partitions: dict[str, Partition] = {}

    def encoder(self) -> Encoder:
        if self._encoder is None:
            from plagiarism.embedding import get_embedder

            self._encoder = get_embedder()
        return self._encoder

    @property
    def space(self) -> Path:
        """root/<model id>: where this model's vectors live."""
        if self._space is None:
            encoder = self.encoder()
            model_id = getattr(encoder, "model_id", None) or type(encoder).__name__
            self._space = self.root / re.sub(r"[^A-Za-z0-9._-]+", "-", str(model_id)).strip("-")
        return self._space

    @property
    def cache(self) -> EmbeddingCache:
        if self._cache is None:
            self._cache = EmbeddingCache(self.space / "cache")
        return self._cache

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.cache.encode(texts, self.encoder)

    def partition(self, course_id: int, assignment_id: int | None) -> Partition:
        name = f"c{course_id}/a{assignment_id}" if assignment_id is not None else f"c{course_id}/sources"
        if name not in self._partitions:
            self._partitions[name] = Partition(self.space / name)
        return self._partitions[name]


_open_indexes: dict[tuple[str, int], PassageIndex] = {}


def open_index(root: Path | None = None, encoder: Encoder | None = None) -> PassageIndex:
    """One PassageIndex per directory (and encoder) per process: the files are
    read once and then only their tails."""
    root = Path(root or default_index_dir()).resolve()
    key = (str(root), id(encoder) if encoder is not None else 0)
    if key not in _open_indexes:
        _open_indexes[key] = PassageIndex(root, encoder)
    return _open_indexes[key]


def _windows_of(texts: list, index: PassageIndex) -> dict:
    """The detection core's sentence windows of prepared texts, embedded through the cache."""
    from plagiarism.nearduplicate import embed_windows

    return embed_windows(texts, index.encode)


def _index_documents(index: PassageIndex, partition: Partition, docs: list[tuple[str, str, str]],
                     templates: list[str]) -> None:
    """Embed (through the cache) and add documents [(doc id, kind, text)] to a partition."""
    from plagiarism.nearduplicate import prepare

    new = [(doc, kind, text) for doc, kind, text in docs if doc not in partition.docs]
    if not new:
        return
    prepared = [prepare(doc, text, kind, templates) for doc, kind, text in new]
    windows = _windows_of(prepared, index)
    for p in prepared:
        w = windows[f"{p.kind}:{p.name}"]
        partition.add(p.name, w.spans, w.vectors)


# ============================================================================ courses


def create_course(session: Session, code: str, title: str = "", actor: str = "system") -> Course:
    code = code.strip()
    if not code:
        raise ServiceError("a course needs a code")
    if session.scalar(select(Course).where(Course.code == code)):
        raise ServiceError(f"a course with the code {code!r} exists already")
    course = Course(code=code, title=title.strip() or code, created_by=actor)
    session.add(course)
    session.flush()
    return course


def get_course(session: Session, code_or_id: str | int) -> Course | None:
    if isinstance(code_or_id, int) or str(code_or_id).isdigit():
        found = session.get(Course, int(code_or_id))
        if found:
            return found
    return session.scalar(select(Course).where(Course.code == str(code_or_id)))


def create_assignment(session: Session, course: Course, name: str, title: str = "",
                      template_text: str = "", actor: str = "system") -> Assignment:
    name = name.strip()
    if not name:
        raise ServiceError("an assignment needs a name")
    if session.scalar(select(Assignment).where(Assignment.course_id == course.id, Assignment.name == name)):
        raise ServiceError(f"{course.code} has an assignment called {name!r} already")
    assignment = Assignment(course_id=course.id, name=name, title=title.strip() or name,
                            template_text=template_text or "", created_by=actor)
    session.add(assignment)
    session.flush()
    return assignment


def get_assignment(session: Session, course: Course, name_or_id: str | int) -> Assignment | None:
    found = session.scalar(select(Assignment).where(Assignment.course_id == course.id,
                                                    Assignment.name == str(name_or_id)))
    if found is None and str(name_or_id).isdigit():
        found = session.get(Assignment, int(name_or_id))
        if found is not None and found.course_id != course.id:
            found = None
    return found


def templates_of(assignment: Assignment) -> list[str]:
    return [assignment.template_text] if assignment.template_text.strip() else []


def add_source(session: Session, course: Course, name: str, data: bytes | str,
               assignment: Assignment | None = None, kind: str = "reading", actor: str = "system",
               index_dir: Path | None = None, encoder: Encoder | None = None) -> Source:
    """A reference text for one assignment (or the whole course when
    `assignment` is None); indexed right away, like a submission."""
    from plagiarism.extract import extract_text

    text = data if isinstance(data, str) else extract_text(data, name)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    source = Source(course_id=course.id, assignment_id=assignment.id if assignment else None,
                    name=name, kind=kind, text=text, sha256=digest, added_by=actor)
    session.add(source)
    session.flush()
    index = open_index(index_dir, encoder)
    partition = index.partition(course.id, assignment.id if assignment else None)
    _index_documents(index, partition, [(f"r{source.id}", "source", text)],
                     templates_of(assignment) if assignment else [])
    return source


def sources_for(session: Session, assignment: Assignment) -> list[Source]:
    return list(session.scalars(select(Source).where(
        Source.course_id == assignment.course_id,
        or_(Source.assignment_id == assignment.id, Source.assignment_id.is_(None))).order_by(Source.id)))


# ============================================================================ submissions

_STUDENT_SPLIT = re.compile(r"[_\s]+|-{1,2}|\.")


def student_from_filename(filename: str) -> tuple[str, str]:
    """`alice_essay1.txt` -> ("alice", "alice"): the stem up to the first
    underscore, dash or space; the whole stem when there is none."""
    stem = Path(filename).stem
    first = _STUDENT_SPLIT.split(stem, maxsplit=1)[0] or stem
    return first, first


def student_per_file(filename: str) -> tuple[str, str]:
    """Each file is its own student (the file's stem)."""
    stem = Path(filename).stem
    return stem, stem


@dataclass
class AddResult:
    """What one upload did: the rows added, the files that were already there
    (by content) and the files that could not be read, with the reason."""

    added: list[Submission] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (filename, existing label)
    errors: list[tuple[str, str]] = field(default_factory=list)      # (filename, reason)

    def as_dict(self) -> dict:
        return {"added": [s.label for s in self.added],
                "duplicates": [{"filename": f, "same_as": s} for f, s in self.duplicates],
                "errors": [{"filename": f, "reason": r} for f, r in self.errors]}


def add_submissions(session: Session, assignment: Assignment, files: Iterable[tuple[str, bytes]],
                    student_of: Callable[[str], tuple[str, str]] = student_from_filename,
                    progress: Progress | None = None, actor: str = "system",
                    index_dir: Path | None = None, encoder: Encoder | None = None) -> AddResult:
    """Read, deduplicate, store and index a set of uploaded files.

    A file that cannot be read becomes an error naming the reason; the rest
    are kept. Identical text (by sha256 of the extracted text, so a .docx and
    its .txt export are one submission) is stored once per assignment. Only
    the new submissions' passages are embedded (through the content-hash
    cache) and appended to the assignment's partition.
    """
    from plagiarism.extract import UnreadableSubmission, extract_text

    files = list(files)
    total = len(files)
    result = AddResult()
    existing = {s.sha256: s.label for s in session.scalars(
        select(Submission).where(Submission.assignment_id == assignment.id))}
    for i, (filename, data) in enumerate(files):
        filename = Path(filename).name or "unnamed"
        try:
            text = extract_text(data, filename)
        except UnreadableSubmission as exc:
            result.errors.append((filename, exc.reason))
        else:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            if digest in existing:
                result.duplicates.append((filename, existing[digest]))
            else:
                student_id, student_name = student_of(filename)
                sub = Submission(assignment_id=assignment.id, student_id=student_id,
                                 student_name=student_name, filename=filename, text=text,
                                 sha256=digest, uploaded_by=actor)
                session.add(sub)
                session.flush()
                existing[digest] = sub.label
                result.added.append(sub)
        if progress:
            progress(i + 1, total, "reading files")
    if result.added:
        if progress:
            progress(total, total, "indexing passages")
        index = open_index(index_dir, encoder)
        partition = index.partition(assignment.course_id, assignment.id)
        _index_documents(index, partition, [(f"s{s.id}", "submission", s.text) for s in result.added],
                         templates_of(assignment))
    return result


# ============================================================================ upload jobs


def create_upload_job(session: Session, assignment: Assignment, files: Iterable[tuple[str, bytes]],
                      actor: str, student_from_name: bool = True) -> UploadJob:
    """Record an upload and its files before anything is read, so progress
    and the files themselves live in the database, not in a web worker."""
    files = list(files)
    job = UploadJob(assignment_id=assignment.id, created_by=actor, total=len(files),
                    student_from_filename=student_from_name, stage="waiting")
    session.add(job)
    session.flush()
    for filename, data in files:
        session.add(UploadFile(job_id=job.id, filename=Path(filename).name, data=data))
    session.flush()
    return job


def run_upload_job(session: Session, job_id: int, index_dir: Path | None = None,
                   encoder: Encoder | None = None) -> UploadJob:
    """Process an upload job, committing its progress after every file."""
    import audit

    job = session.get(UploadJob, job_id)
    if job is None:
        raise ServiceError(f"no upload job {job_id}")
    assignment = session.get(Assignment, job.assignment_id)
    files = list(session.scalars(select(UploadFile).where(UploadFile.job_id == job.id,
                                                          UploadFile.processed.is_(False))
                                 .order_by(UploadFile.id)))
    job.state, job.stage = UPLOAD_RUNNING, "reading files"
    session.commit()

    def progress(done: int, total: int, stage: str) -> None:
        job.done, job.stage = done, stage
        session.commit()

    try:
        result = add_submissions(session, assignment, [(f.filename, f.data or b"") for f in files],
                                 student_of=student_from_filename if job.student_from_filename
                                 else student_per_file,
                                 progress=progress, actor=job.created_by, index_dir=index_dir,
                                 encoder=encoder)
    except Exception as exc:
        session.rollback()
        job = session.get(UploadJob, job_id)
        job.state, job.stage = UPLOAD_FAILED, f"failed: {type(exc).__name__}: {exc}"[:64]
        job.errors = json.dumps([{"filename": "(upload)", "reason": str(exc)}])
        job.finished_at = utcnow()
        session.commit()
        raise
    for f in files:
        f.processed, f.data = True, None
    job.added, job.duplicates = len(result.added), len(result.duplicates)
    job.errors = json.dumps(result.as_dict()["errors"] + [
        {"filename": f, "reason": f"the same text as {s}, which is kept once"} for f, s in result.duplicates])
    job.state, job.stage, job.done, job.finished_at = UPLOAD_DONE, "done", job.total, utcnow()
    audit.record(session, job.created_by, "submissions_uploaded", f"assignment:{assignment.id}",
                 job=job.id, added=job.added, duplicates=job.duplicates,
                 unreadable=len(result.errors))
    session.commit()
    return job


# ============================================================================ reports


def _history(session: Session, assignment: Assignment) -> dict[str, list[Submission]]:
    """Every student's submissions in the course, oldest first."""
    rows = session.execute(
        select(Submission, Assignment).join(Assignment, Submission.assignment_id == Assignment.id)
        .where(Assignment.course_id == assignment.course_id)
        .order_by(Assignment.created_at, Assignment.id, Submission.uploaded_at, Submission.id)).all()
    out: dict[str, list[Submission]] = {}
    for sub, _ in rows:
        out.setdefault(sub.student_id, []).append(sub)
    return out


def _anomalies(session: Session, assignment: Assignment, subs: list[Submission],
               index: PassageIndex) -> dict[int, dict]:
    """Anomaly results per submission id of this assignment, from the
    detection core's anomaly detector run over each student's course history
    (the cohort serving as impostors)."""
    history = _history(session, assignment)
    try:
        from plagiarism import anomaly as detector
    except ImportError:
        detector = None
    if detector is None or not hasattr(detector, "detect"):
        return {s.id: {"score": 0.0, "flagged": False,
                       "reasons": ["Anomaly detection is not available in this installation."]}
                for s in subs}
    students = {student: [(f"s{s.id}", s.text) for s in items] for student, items in history.items()}
    results = detector.detect(students, encode=index.encode)
    wanted = {f"s{s.id}": s.id for s in subs}
    out: dict[int, dict] = {}
    for r in results:
        d = r if isinstance(r, dict) else r.as_dict()
        if d.get("submission") in wanted:
            out[wanted[d["submission"]]] = {"score": round(float(d.get("score", 0.0)), 4),
                                            "flagged": bool(d.get("flagged")),
                                            "reasons": list(d.get("reasons", []))}
    for s in subs:
        out.setdefault(s.id, {"score": 0.0, "flagged": False,
                              "reasons": ["No anomaly result for this submission."]})
    return out


def _candidate_sources(index: PassageIndex, assignment: Assignment, subs: list[Submission],
                       sources: list[Source], threshold: float) -> list[Source]:
    """With many sources, keep those with a passage close to some submission
    passage (exact search in the assignment's and the course's partitions)."""
    if len(sources) <= SOURCE_CANDIDATE_LIMIT:
        return sources
    own = index.partition(assignment.course_id, assignment.id)
    own.refresh()
    rows = [i for i, m in enumerate(own.meta) if m["doc"].startswith("s")]
    if not rows:
        return []
    queries = own.matrix[rows]
    hits: set[str] = set()
    for part in (own, index.partition(assignment.course_id, None)):
        for found in part.search(queries, k=8):
            hits.update(m["doc"] for sim, m in found if sim >= threshold and m["doc"].startswith("r"))
    return [s for s in sources if f"r{s.id}" in hits]


def build_report(session: Session, assignment: Assignment, registry=None, actor: str = "system",
                 index_dir: Path | None = None, encoder: Encoder | None = None,
                 progress: Progress | None = None) -> Report:
    """Compare the assignment's submissions with each other and its sources,
    look for anomalies, store the report and anchor its fingerprint.

    The report is committed before its anchoring transaction is sent, so a
    chain that is down leaves a usable report in state `anchor_failed` that
    `anchor_report` can finish later.
    """
    import audit
    from plagiarism.nearduplicate import FLAG_THRESHOLD, Params, scan

    course = session.get(Course, assignment.course_id)
    subs = list(session.scalars(select(Submission).where(Submission.assignment_id == assignment.id)
                                .order_by(Submission.id)))
    index = open_index(index_dir, encoder)
    templates = templates_of(assignment)
    # Index anything not indexed yet (a crash between commit and indexing).
    _index_documents(index, index.partition(course.id, assignment.id),
                     [(f"s{s.id}", "submission", s.text) for s in subs], templates)
    params = Params()
    sources = _candidate_sources(index, assignment, subs, sources_for(session, assignment),
                                 params.supported_sim)
    if progress:
        progress(0, 3, "comparing passages")
    result = scan({f"s{s.id}": s.text for s in subs}, {f"r{s.id}": s.text for s in sources},
                  templates=templates, encode=index.encode, params=params)
    if progress:
        progress(1, 3, "looking for anomalies")
    anomalies = _anomalies(session, assignment, subs, index)
    by_key = {f"s{s.id}": s for s in subs}
    src_by_key = {f"r{s.id}": s for s in sources}
    cluster_of = {key: n + 1 for n, group in enumerate(result.clusters) for key in group}

    def ref(key: str) -> dict:
        if key in by_key:
            s = by_key[key]
            return {"type": "submission", "id": s.id, "name": s.label}
        s = src_by_key[key]
        return {"type": "source", "id": s.id, "name": s.name, "kind": s.kind}

    rows = []
    for r in result.reports:
        s = by_key[r.submission]
        rows.append({
            "id": s.id, "student_id": s.student_id, "student_name": s.student_name,
            "filename": s.filename, "sha256": s.sha256,
            "score": round(r.score, 4), "flagged": r.flagged,
            "cluster": cluster_of.get(r.submission),
            "matches": [{**ref(m.source), "similarity": round(m.similarity, 3), "method": m.method,
                         "submission_span": list(m.submission_span), "source_span": list(m.source_span)}
                        for m in r.matches],
            "excluded": [{"kind": k, "span": [a, b]} for a, b, k in r.excluded],
            "anomaly": anomalies[s.id],
        })
    body = {
        "type": "AttestSimilarityReport", "version": 1,
        "course": {"id": course.id, "code": course.code, "title": course.title},
        "assignment": {"id": assignment.id, "name": assignment.name, "title": assignment.title,
                       "template_sha256": hashlib.sha256(assignment.template_text.encode()).hexdigest()},
        "created_at": utcnow().isoformat(timespec="seconds") + "Z", "created_by": actor,
        "flag_threshold": FLAG_THRESHOLD,
        "sources": [{"id": s.id, "name": s.name, "kind": s.kind, "sha256": s.sha256} for s in sources],
        "submissions": rows,
        "clusters": [[by_key[k].id for k in group] for group in result.clusters],
        "nonce": os.urandom(8).hex(),  # two identical runs still anchor two distinct reports
    }
    text = audit_anchor.canonical_body(body)
    report = Report(assignment_id=assignment.id, created_by=actor, body=text,
                    fingerprint=audit_anchor.fingerprint_of(text), state=REPORT_UNANCHORED)
    session.add(report)
    session.flush()
    for row in rows:
        session.add(ScoreRow(report_id=report.id, submission_id=row["id"], score=row["score"],
                             flagged=row["flagged"], anomaly_flagged=row["anomaly"]["flagged"],
                             cluster=row["cluster"]))
    audit.record(session, actor, "report_built", f"report:{report.id}", assignment=assignment.id,
                 fingerprint=report.fingerprint, flagged=sum(r["flagged"] for r in rows))
    session.commit()
    if progress:
        progress(2, 3, "anchoring the fingerprint")
    if registry is not None:
        anchor_report(session, report, registry, actor)
    if progress:
        progress(3, 3, "done")
    return report


def anchor_report(session: Session, report: Report, registry, actor: str = "system") -> Report:
    """One `anchor(fingerprint, 1)` transaction; the report records where."""
    import audit

    if report.state == REPORT_ANCHORED:
        return report
    try:
        existing = registry.anchor_of(report.fingerprint)
        if existing is not None:
            report.block_number = existing.block_number
        else:
            tx = registry.anchor(report.fingerprint, 1)
            report.tx_hash, report.block_number = tx.tx_hash, tx.block_number
        report.anchor_root = report.fingerprint
        report.chain_id, report.registry_address = registry.chain_id, registry.address
        report.state, report.error = REPORT_ANCHORED, None
        audit.record(session, actor, "report_anchored", f"report:{report.id}",
                     fingerprint=report.fingerprint, tx_hash=report.tx_hash, block=report.block_number)
    except Exception as exc:  # noqa: BLE001 - the report stays; the error is shown and can be retried
        report.state, report.error = REPORT_ANCHOR_FAILED, f"{type(exc).__name__}: {exc}"[:2000]
    session.commit()
    return report


def verify_report(report: Report, registry) -> dict:
    """Recompute the report's fingerprint and check it against the chain."""
    return audit_anchor.verify(report.body, report.fingerprint, report.block_number, registry)


def latest_report(session: Session, assignment: Assignment) -> Report | None:
    return session.scalar(select(Report).where(Report.assignment_id == assignment.id)
                          .order_by(Report.created_at.desc(), Report.id.desc()).limit(1))


# ============================================================================ reviews


def mark_reviewed(session: Session, reviewer: str, comment: str, submission: Submission | None = None,
                  report: Report | None = None, reviewed: bool = True) -> Review:
    """A person looked at this case: recorded in the review table and the audit log."""
    import audit

    if submission is None and report is None:
        raise ServiceError("a review names a submission or a report")
    review = Review(submission_id=submission.id if submission else None,
                    report_id=report.id if report else None, reviewer=reviewer,
                    reviewed=reviewed, comment=comment.strip())
    session.add(review)
    subject = f"submission:{submission.id}" if submission else f"report:{report.id}"
    audit.record(session, reviewer, "case_reviewed" if reviewed else "case_reopened", subject,
                 comment=review.comment, report=report.id if report else None)
    session.commit()
    return review


def reviews_of(session: Session, submission: Submission) -> list[Review]:
    return list(session.scalars(select(Review).where(Review.submission_id == submission.id)
                                .order_by(Review.at.desc(), Review.id.desc())))
