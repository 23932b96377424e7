"""Accounts of the web application: created, listed, disabled and given new passwords by `dongbo users`.

Passwords are hashed with Argon2id (argon2-cffi, memory-hard); a hash made with older parameters is
replaced at the next successful log-in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from shared.db.web_models import WebSession, WebUser

ROLES = ("viewer", "operator")
NAME = re.compile(r"^[A-Za-z0-9._@-]{1,100}$")
MIN_PASSWORD = 8

_hasher = PasswordHasher()
users = SQLModel.metadata.tables[WebUser.__tablename__]
sessions = SQLModel.metadata.tables[WebSession.__tablename__]


class AccountError(ValueError):
    """A request about an account that cannot be done (unknown name, bad role, short password)."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    units: tuple[str, ...]  # empty: every unit
    disabled: bool = False

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def sees(self, madonvi: str) -> bool:
        return not self.units or madonvi in self.units


def user_of(row) -> User:
    units = tuple(u for u in (row["units"] or "").split(",") if u)
    return User(row["id"], row["username"], row["role"], units, bool(row["disabled"]))


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def add_user(engine: Engine, username: str, role: str, units: list[str], password: str) -> User:
    if not NAME.match(username):
        raise AccountError("a user name has 1 to 100 letters, digits, dots, dashes, underscores or @")
    if role not in ROLES:
        raise AccountError(f"the role must be one of {', '.join(ROLES)}")
    now = datetime.now(UTC)
    with engine.begin() as connection:
        if connection.execute(select(users.c.id).where(users.c.username == username)).first():
            raise AccountError(f"user {username} exists already")
        connection.execute(insert(users).values(
            username=username, password_hash=hash_password(password), role=role, units=",".join(units),
            disabled=False, created_at=now, password_changed_at=now))
    return find_user(engine, username)


def find_user(engine: Engine, username: str) -> User:
    with engine.connect() as connection:
        row = connection.execute(select(users).where(users.c.username == username)).mappings().first()
    if row is None:
        raise AccountError(f"no user {username}")
    return user_of(row)


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as connection:
        return [user_of(row) for row in connection.execute(select(users).order_by(users.c.username)).mappings()]


def disable_user(engine: Engine, username: str) -> None:
    """Disabled at once: the account's sessions end too."""
    user = find_user(engine, username)
    with engine.begin() as connection:
        connection.execute(update(users).where(users.c.id == user.id).values(disabled=True))
        connection.execute(sessions.delete().where(sessions.c.user_id == user.id))


def set_password(engine: Engine, username: str, password: str) -> None:
    """A new password ends every session of the account (and enables it again)."""
    user = find_user(engine, username)
    with engine.begin() as connection:
        connection.execute(update(users).where(users.c.id == user.id).values(
            password_hash=hash_password(password), password_changed_at=datetime.now(UTC), disabled=False))
        connection.execute(sessions.delete().where(sessions.c.user_id == user.id))


# A hash to verify against when the name is unknown, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-password-of-anyone")


def check_password(engine: Engine, username: str, password: str) -> User | None:
    """The user when the name and password are right and the account is enabled, else None."""
    with engine.connect() as connection:
        row = connection.execute(select(users).where(users.c.username == username)).mappings().first()
    try:
        _hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or row["disabled"]:
        return None
    if _hasher.check_needs_rehash(row["password_hash"]):
        with engine.begin() as connection:
            connection.execute(update(users).where(users.c.id == row["id"]).values(
                password_hash=_hasher.hash(password)))
    return user_of(row)
