"""Who may use the dashboard: roles (config/roles.yaml) and local accounts (config/users.yaml), validated at start-up.

A role grants pages and permissions and sets how long a session lasts; an account has a role, a scope (the whole
city, or a list of district ids) and a password hash (never the password: `python -m core.users hash-password`).
A kiosk account is the one a wall display signs in with: its session does not expire while the wall is on.

The design is open to a city's single sign-on: the dashboard asks `authenticate` for a User; another provider
(a trusted reverse-proxy header, OIDC) would return the same User from the same account list.
"""
import getpass
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from werkzeug.security import check_password_hash, generate_password_hash

from core import config_files
from core.errors import ConfigError
from core.settings import Names, Strict

PERMISSIONS = ("acknowledge", "view_records", "export", "audit")
HASH_PREFIXES = ("scrypt:", "pbkdf2:")


class Role(Strict):
    name: Names
    pages: list[str] = Field(min_length=1, description="page paths this role may open, or ['*'] for every page")
    permissions: list[Literal[PERMISSIONS]] = []
    idle_minutes: int = Field(30, ge=1, le=7 * 24 * 60, description="a session unused this long ends")
    max_hours: float = Field(12, gt=0, le=24 * 30, description="a session ends this long after sign-in")


class Roles(Strict):
    roles: dict[str, Role] = Field(min_length=1)

    @field_validator("roles")
    @classmethod
    def _ids(cls, v):
        for role_id in v:
            if not role_id.replace("_", "").isalnum() or not role_id.islower():
                raise ValueError(f"role ids in lower case letters, digits and '_', not {role_id!r}")
        return v


class Account(Strict):
    username: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    name: str = Field(min_length=1)
    role: str
    scope: Literal["city"] | list[str] = Field(description="'city' or a list of district ids")
    password_hash: str = Field(min_length=20)
    kiosk: bool = Field(False, description="a shared wall display: stays signed in, small numbers suppressed")
    disabled: bool = False

    @field_validator("password_hash")
    @classmethod
    def _hashed(cls, v):
        if not v.startswith(HASH_PREFIXES):
            raise ValueError("a password hash made by `python -m core.users hash-password` (scrypt:... or "
                             "pbkdf2:...), never a plain password")
        return v

    @field_validator("scope")
    @classmethod
    def _scope(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("'city' or at least one district id")
        return v


class Accounts(Strict):
    users: list[Account] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        seen = set()
        for account in self.users:
            if account.username in seen:
                raise ValueError(f"username {account.username!r} appears twice")
            seen.add(account.username)
        return self


@dataclass(frozen=True)
class User:
    """A signed-in user as the query layer sees it (query.store.caller)."""
    username: str
    name: str
    role: str
    scope: tuple[str, ...] | None      # None: the whole city
    kiosk: bool
    permissions: frozenset[str]
    pages: frozenset[str]

    def may_open(self, path: str) -> bool:
        return "*" in self.pages or path in self.pages


class Directory:
    """The accounts and roles of one deployment."""

    def __init__(self, roles: dict[str, Role], accounts: list[Account]):
        self.roles = roles
        self.accounts = {a.username: a for a in accounts}

    def user(self, username: str) -> User | None:
        account = self.accounts.get(username)
        if account is None or account.disabled:
            return None
        role = self.roles[account.role]
        scope = None if account.scope == "city" else tuple(account.scope)
        return User(account.username, account.name, account.role, scope, account.kiosk,
                    frozenset(role.permissions), frozenset(role.pages))

    def authenticate(self, username: str, password: str) -> User | None:
        account = self.accounts.get(username)
        if account is None:
            check_password_hash(_DUMMY, password)    # the same work for an unknown name: no timing oracle
            return None
        if not check_password_hash(account.password_hash, password):
            return None
        return self.user(username)

    def session_stamp(self, username: str) -> str:
        """Changes when the password does: a session made with the old one stops working."""
        return self.accounts[username].password_hash[-12:]


_DUMMY = generate_password_hash("not a password")


def load(config_dir: Path, districts: set[str] | None = None) -> Directory:
    roles_path, users_path = config_dir / "roles.yaml", config_dir / "users.yaml"
    roles = config_files.load(Roles, roles_path).roles
    accounts = config_files.load(Accounts, users_path).users
    for index, account in enumerate(accounts):
        if account.role not in roles:
            raise ConfigError(f"{users_path}: key 'users.{index}.role': got {account.role!r}; "
                              f"expected one of {sorted(roles)} (config/roles.yaml)")
        if districts is not None and isinstance(account.scope, list):
            unknown = [d for d in account.scope if d not in districts]
            if unknown:
                raise ConfigError(f"{users_path}: key 'users.{index}.scope': got unknown district {unknown[0]!r}; "
                                  f"expected 'city' or district ids of the boundaries ({sorted(districts)})")
    return Directory(roles, accounts)


def check_pages(directory: Directory, config_dir: Path, pages: set[str]) -> None:
    """Every page a role names exists (run when the dashboard starts, once pages are registered)."""
    for role_id, role in directory.roles.items():
        for index, page in enumerate(role.pages):
            if page != "*" and page not in pages:
                raise ConfigError(f"{config_dir / 'roles.yaml'}: key 'roles.{role_id}.pages.{index}': got {page!r}; "
                                  f"expected '*' or one of {sorted(pages)}")


def main(argv: list[str]) -> int:
    if argv[:1] != ["hash-password"]:
        print("usage: python -m core.users hash-password   (reads the password from the terminal or stdin)",
              file=sys.stderr)
        return 2
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("error: a password of at least 8 characters", file=sys.stderr)
        return 2
    print(generate_password_hash(password))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
