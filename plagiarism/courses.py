"""Courses, who may see them, their assignments and reference sources.

Plain functions over a SQLAlchemy session (no Flask). Each change commits its
own transaction with its own audit entry, so a course made from the CLI leaves
the same trail as one made on the web.

Who may see a course is kept in `CourseMember` (owner or member). Admins see
every course. A course with no members at all (made before memberships
existed, or by the CLI without --owner) is a legacy course and stays visible
to every instructor, so no one loses old data.
"""

from __future__ import annotations

import re

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kernel import audit
from plagiarism.store import COURSE_OWNER, COURSE_ROLES, Assignment, Course, CourseMember, Source

# Names that are safe in partition keys, URLs and file names.
COURSE_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
ASSIGNMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ServiceError(ValueError):
    """Something the user asked for that cannot be done; the message says why."""


def create_course(session: Session, code: str, title: str = "", actor: str = "system",
                  owner_email: str | None = None) -> Course:
    """A new course (with `owner_email` as its owner, if given); committed and audit-logged."""
    code = code.strip()
    if not COURSE_CODE.match(code):
        raise ServiceError("a course code is letters, digits, spaces, '_', '.' or '-' (up to 64), "
                           "starting with a letter or digit")
    if session.scalar(select(Course).where(Course.code == code)):
        raise ServiceError(f"a course with the code {code!r} exists already")
    course = Course(code=code, title=title.strip() or code, created_by=actor)
    session.add(course)
    session.flush()
    audit.record(session, actor, "course_created", f"course:{course.id}", code=course.code)
    if owner_email:
        _add_member(session, course, owner_email, COURSE_OWNER, actor)
    session.commit()
    return course


def get_course(session: Session, code_or_id: str | int) -> Course | None:
    if isinstance(code_or_id, int) or str(code_or_id).isdigit():
        found = session.get(Course, int(code_or_id))
        if found:
            return found
    return session.scalar(select(Course).where(Course.code == str(code_or_id)))


# ----- who may see a course -----------------------------------------------------------

def _is_admin(user) -> bool:
    return getattr(user, "role", None) == "admin"


def course_role(session: Session, course: Course, user) -> str | None:
    """The user's role in the course (`owner`/`member`), or None."""
    return session.scalar(select(CourseMember.role).where(CourseMember.course_id == course.id,
                                                          CourseMember.user_id == user.id))


def can_see_course(session: Session, course: Course, user) -> bool:
    if _is_admin(user):
        return True
    if course_role(session, course, user) is not None:
        return True
    return session.scalar(select(CourseMember.id).where(CourseMember.course_id == course.id).limit(1)) is None


def can_manage_course(session: Session, course: Course, user) -> bool:
    """May add people to the course: its owners, and admins."""
    return _is_admin(user) or course_role(session, course, user) == COURSE_OWNER


def visible_courses(session: Session, user) -> list[Course]:
    """The courses the user may see, by code."""
    query = select(Course).order_by(Course.code)
    if not _is_admin(user):
        mine = select(CourseMember.course_id).where(CourseMember.user_id == user.id)
        with_members = select(CourseMember.course_id)
        query = query.where(or_(Course.id.in_(mine), Course.id.not_in(with_members)))
    return list(session.scalars(query))


def course_members(session: Session, course: Course) -> list[tuple[CourseMember, object]]:
    from kernel.accounts import User

    rows = session.execute(select(CourseMember, User).join(User, User.id == CourseMember.user_id)
                           .where(CourseMember.course_id == course.id)
                           .order_by(CourseMember.added_at, CourseMember.id))
    return [(member, user) for member, user in rows]


def _add_member(session: Session, course: Course, email: str, role: str, actor: str) -> CourseMember:
    from kernel.accounts import User

    if role not in COURSE_ROLES:
        raise ServiceError(f"a course role is one of {', '.join(COURSE_ROLES)}, not {role!r}")
    email = (email or "").strip().lower()
    user = session.scalar(select(User).where(User.email == email)) if email else None
    if user is None:
        raise ServiceError(f"no user has the email {email!r}: they need an instructor account first")
    if not user.can("instructor"):
        raise ServiceError(f"{email} is not an instructor")
    member = session.scalar(select(CourseMember).where(CourseMember.course_id == course.id,
                                                       CourseMember.user_id == user.id))
    if member is not None:
        if member.role == role:
            raise ServiceError(f"{email} is already {'an' if role == COURSE_OWNER else 'a'} {role} of {course.code}")
        previous, member.role = member.role, role
        audit.record(session, actor, "course_member_changed", f"course:{course.id}", code=course.code,
                     email=email, role=role, previous=previous)
        return member
    member = CourseMember(course_id=course.id, user_id=user.id, role=role, added_by=actor)
    session.add(member)
    session.flush()
    audit.record(session, actor, "course_member_added", f"course:{course.id}", code=course.code,
                 email=email, role=role)
    return member


def add_course_member(session: Session, course: Course, email: str, role: str, actor: str) -> CourseMember:
    """Give an instructor access to a course (or change their role in it);
    committed and audit-logged. ServiceError for an unknown email or a non-instructor."""
    try:
        member = _add_member(session, course, email, role, actor)
    except ServiceError:
        session.rollback()
        raise
    session.commit()
    return member


# ----- assignments and sources --------------------------------------------------------

def create_assignment(session: Session, course: Course, name: str, title: str = "",
                      template_text: str = "", actor: str = "system") -> Assignment:
    """A new assignment of `course`; committed and audit-logged. Its reference
    sources are added by an upload job (`submissions.submit_upload`)."""
    name = name.strip()
    if not ASSIGNMENT_NAME.match(name):
        raise ServiceError("an assignment's short name is letters, digits, '_', '.' or '-' (no spaces), "
                           "starting with a letter or digit")
    if session.scalar(select(Assignment).where(Assignment.course_id == course.id, Assignment.name == name)):
        raise ServiceError(f"{course.code} has an assignment called {name!r} already")
    assignment = Assignment(course_id=course.id, name=name, title=title.strip() or name,
                            template_text=template_text or "", created_by=actor)
    session.add(assignment)
    session.flush()
    audit.record(session, actor, "assignment_created", f"assignment:{assignment.id}", course=course.code,
                 name=assignment.name)
    session.commit()
    return assignment


def get_assignment(session: Session, course: Course, name_or_id: str | int) -> Assignment | None:
    found = session.scalar(select(Assignment).where(Assignment.course_id == course.id,
                                                    Assignment.name == str(name_or_id)))
    if found is None and str(name_or_id).isdigit():
        found = session.get(Assignment, int(name_or_id))
        if found is not None and found.course_id != course.id:
            found = None
    return found


def assignments_of(session: Session, course: Course) -> list[Assignment]:
    return list(session.scalars(select(Assignment).where(Assignment.course_id == course.id)
                                .order_by(Assignment.created_at, Assignment.id)))


def sources_for(session: Session, assignment: Assignment) -> list[Source]:
    """The assignment's own sources and the course-wide ones."""
    return list(session.scalars(select(Source).where(
        Source.course_id == assignment.course_id,
        or_(Source.assignment_id == assignment.id, Source.assignment_id.is_(None))).order_by(Source.id)))


def course_sources(session: Session, course: Course) -> list[Source]:
    return list(session.scalars(select(Source).where(Source.course_id == course.id,
                                                     Source.assignment_id.is_(None)).order_by(Source.id)))
