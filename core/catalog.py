"""Reference data a city edits: incident categories, departments and sensor thresholds (config/*.yaml)."""
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from core import config_files
from core.errors import ConfigError
from core.settings import Strict

CODE = r"^[A-Za-z][A-Za-z0-9_]{0,31}$"


class Category(Strict):
    en: str
    zh: str
    department: str
    sla_hours: float = Field(gt=0)
    aliases: list[str] = []


class Department(Strict):
    en: str
    zh: str
    aliases: list[str] = []


class Metric(Strict):
    en: str
    zh: str
    unit: str
    direction: Literal["above", "below"]
    warn: float
    alarm: float
    valid: tuple[float, float]

    @model_validator(mode="after")
    def _ordered(self):
        worse = (lambda a, b: a >= b) if self.direction == "above" else (lambda a, b: a <= b)
        if not worse(self.alarm, self.warn):
            raise ValueError(f"alarm to be {'at or above' if self.direction == 'above' else 'at or below'} warn")
        return self


class Categories(Strict):
    categories: dict[str, Category]


class Departments(Strict):
    departments: dict[str, Department]


class Thresholds(Strict):
    offline_after_hours: float = Field(3, gt=0)
    metrics: dict[str, Metric]


class Catalog:
    def __init__(self, categories: dict[str, Category], departments: dict[str, Department], thresholds: Thresholds):
        self.categories = categories
        self.departments = departments
        self.thresholds = thresholds

    def value_map(self, name: str) -> dict[str, str]:
        """Source label -> canonical code for a named catalogue ('categories' or 'departments')."""
        entries = {"categories": self.categories, "departments": self.departments}[name]
        mapping = {code: code for code in entries}
        for code, entry in entries.items():
            mapping.update({alias: code for alias in entry.aliases})
        return mapping


def load(config_dir: Path) -> Catalog:
    cats = config_files.load(Categories, config_dir / "categories.yaml").categories
    deps = config_files.load(Departments, config_dir / "departments.yaml").departments
    for code, cat in cats.items():
        if cat.department not in deps:
            raise ConfigError(f"{config_dir / 'categories.yaml'}: key 'categories.{code}.department': "
                              f"got {cat.department!r}; expected one of {sorted(deps)} (config/departments.yaml)")
    return Catalog(cats, deps, config_files.load(Thresholds, config_dir / "thresholds.yaml"))
