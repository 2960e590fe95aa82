"""People who log in: registrars and instructors. Passwords are hashed
(werkzeug's scrypt); no password is ever stored or logged in clear.

A session names the user *and* the user's `session_version`; logging out or
changing the password moves the version on, so every cookie issued before
(on any device, copied or not) stops opening pages at once. The check is made
on every request (`kernel.web.auth`), against the database: no server-side
session store is needed and any worker can answer."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Integer, String, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from kernel.database import Base, add_column, create_tables, migration, utcnow

ROLES = ("registrar", "instructor", "admin")


class User(Base):
    __tablename__ = "users"
    id = Column(Integer, primary_key=True)
    email = Column(String(255), nullable=False, unique=True)
    name = Column(String(255), nullable=False, default="")
    role = Column(String(32), nullable=False)
    password_hash = Column(String(255), nullable=False)
    active = Column(Boolean, nullable=False, default=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    session_version = Column(Integer, nullable=False, default=1)

    # Flask-Login's protocol, without importing Flask here.
    @property
    def is_active(self) -> bool:
        return bool(self.active)

    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        # What the session cookie carries: a cookie from before a logout or a
        # password change names an older version and is refused.
        return f"{self.id}.{self.session_version or 1}"

    def end_sessions(self) -> None:
        """Every session of this user ends (the caller commits)."""
        self.session_version = (self.session_version or 1) + 1

    def can(self, role: str) -> bool:
        return self.role == role or self.role == "admin"


@migration("0002_users")
def _create(conn):
    create_tables(conn, User)


@migration("0003_users_session_version")
def _session_version(conn):
    add_column(conn, "users", Column("session_version", Integer, nullable=False, server_default="1"))


class UserError(ValueError):
    pass


def create_user(session: Session, email: str, password: str, role: str, name: str = "") -> User:
    email = email.strip().lower()
    if "@" not in email:
        raise UserError(f"{email!r} is not an email address")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if len(password) < 8:
        raise UserError("the password must have at least 8 characters")
    if session.scalar(select(User).where(User.email == email)):
        raise UserError(f"a user with email {email} exists already")
    user = User(email=email, name=name or email.split("@")[0], role=role,
                password_hash=generate_password_hash(password))
    session.add(user)
    return user


def set_password(user: User, password: str) -> None:
    """A new password ends every session of the user (the caller commits)."""
    if len(password) < 8:
        raise UserError("the password must have at least 8 characters")
    user.password_hash = generate_password_hash(password)
    user.end_sessions()


def load_session_user(session: Session, session_id: str) -> User | None:
    """The user a session cookie names, if that session is still current."""
    user_id, _, version = session_id.partition(".")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = session.get(User, int(user_id))
    if user is None or not user.active or (user.session_version or 1) != int(version):
        return None
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.active or not check_password_hash(user.password_hash, password):
        return None
    return user
