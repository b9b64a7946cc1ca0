"""Scheduled snapshot exports (config/exports.yaml): which page, as which account, at what size, in which formats,
when, and how many to keep. Page paths are checked against the app's pages when the dashboard starts."""
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from core import config_files
from core.errors import ConfigError
from core.feeds import Schedule
from core.settings import Names, Strict

FILE = "exports.yaml"


class Viewport(Strict):
    width: int = Field(1920, ge=320, le=7680)
    height: int = Field(1080, ge=240, le=4320)


class Export(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    name: Names
    page: str = Field(pattern=r"^/[a-z0-9/_-]*$")
    params: dict[str, str] = {}
    user: str = Field(description="the account the page is seen as (its role, scope and small-number rule)")
    viewport: Viewport = Viewport()
    formats: list[Literal["png", "pdf"]] = Field(["png", "pdf"], min_length=1)
    schedule: Schedule
    keep: int = Field(30, ge=1, le=10_000, description="keep this many of the newest snapshots, delete older")


class Exports(Strict):
    dir: Path = Field(Path("var/exports"), description="snapshots are written under dir/<export id>/")
    base_url: str = Field("http://127.0.0.1:8050", pattern=r"^https?://[^/?#]+$",
                          description="where the export job finds the running dashboard (this machine)")
    timeout_seconds: int = Field(120, ge=10, le=1800)
    exports: list[Export] = []

    @model_validator(mode="after")
    def _unique(self):
        ids = [e.id for e in self.exports]
        if len(ids) != len(set(ids)):
            raise ValueError(f"export ids must be unique: {min(i for i in ids if ids.count(i) > 1)!r} twice")
        return self


def load(config_dir: Path, usernames: set[str] | None = None) -> Exports:
    """config/exports.yaml, or no exports when the file is absent."""
    path = config_dir / FILE
    if not path.is_file():
        return Exports()
    exports = config_files.load(Exports, path)
    for index, export in enumerate(exports.exports):
        if usernames is not None and export.user not in usernames:
            raise ConfigError(f"{path}: key 'exports.{index}.user': got {export.user!r}; "
                              f"expected an account of config/users.yaml ({sorted(usernames)})")
    return exports


def check_pages(exports: Exports, config_dir: Path, pages: set[str], params: set[str]) -> None:
    for index, export in enumerate(exports.exports):
        if export.page not in pages:
            raise ConfigError(f"{config_dir / FILE}: key 'exports.{index}.page': got {export.page!r}; "
                              f"expected one of {sorted(pages)}")
        for name in export.params:
            if name not in params:
                raise ConfigError(f"{config_dir / FILE}: key 'exports.{index}.params.{name}': not a page "
                                  f"parameter; expected one of {sorted(params)}")
