"""Wall playlists (config/playlists/*.yaml): views, each a page address with its parameters, shown in turn on a
timer, as Grafana's playlists do. Page paths are checked against the app's pages when the dashboard starts."""
from pathlib import Path

from pydantic import Field

from core import config_files
from core.errors import ConfigError
from core.settings import Names, Strict


class View(Strict):
    path: str = Field(pattern=r"^/[a-z0-9/_-]*$")
    params: dict[str, str] = {}
    seconds: int | None = Field(None, ge=5, le=3600, description="overrides the playlist's interval")


class Playlist(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    name: Names
    seconds: int = Field(60, ge=5, le=3600)
    views: list[View] = Field(min_length=1)


def load_all(config_dir: Path) -> dict[str, Playlist]:
    playlists = {}
    for path in sorted((config_dir / "playlists").glob("*.yaml")):
        playlist = config_files.load(Playlist, path)
        if path.stem != playlist.id:
            raise ConfigError(f"{path}: key 'id': got {playlist.id!r}; expected the file name's stem {path.stem!r}")
        playlists[playlist.id] = playlist
    return playlists


def check_views(playlists: dict[str, Playlist], config_dir: Path, pages: set[str], params: set[str]) -> None:
    """Every view names an existing page and parameters pages accept (run when the dashboard starts)."""
    for playlist in playlists.values():
        path = config_dir / "playlists" / f"{playlist.id}.yaml"
        for index, view in enumerate(playlist.views):
            if view.path not in pages:
                raise ConfigError(f"{path}: key 'views.{index}.path': got {view.path!r}; expected one of {sorted(pages)}")
            for name in view.params:
                if name not in params or name == "playlist":
                    raise ConfigError(f"{path}: key 'views.{index}.params.{name}': not a page parameter; "
                                      f"expected one of {sorted(params - {'playlist'})}")
