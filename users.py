"""People who log in: registrars and instructors. Passwords are hashed
(werkzeug's scrypt); no password is ever stored or logged in clear."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Integer, String, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from db import Base, create_tables, migration, utcnow

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

    # Flask-Login's protocol, without importing Flask here.
    @property
    def is_active(self) -> bool:
        return bool(self.active)

    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)

    def can(self, role: str) -> bool:
        return self.role == role or self.role == "admin"


@migration("0002_users")
def _create(conn):
    create_tables(conn, User)


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


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.active or not check_password_hash(user.password_hash, password):
        return None
    return user
