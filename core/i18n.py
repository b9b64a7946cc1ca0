"""The message catalogue: one YAML file per language in config/i18n/, identical key sets, looked up by key."""
from pathlib import Path

from core import config_files
from core.errors import ConfigError


class Messages:
    def __init__(self, catalogues: dict[str, dict[str, str]], default: str):
        self.catalogues = catalogues
        self.default = default
        self.languages = list(catalogues)

    def t(self, lang: str, key: str, **values) -> str:
        text = self.catalogues.get(lang, self.catalogues[self.default])[key]
        return text.format(**values) if values else text

    def resolve(self, lang: str | None) -> str | None:
        """The language to show for a requested code, or None when the code is not offered."""
        if lang in (None, ""):
            return self.default
        return lang if lang in self.catalogues else None


PRODUCT = Path(__file__).resolve().parent.parent / "config" / "i18n"


def _read(path: Path) -> dict[str, str]:
    data = config_files.read_yaml(path)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{path}: expected a flat mapping of message keys to text")
    return {str(k): v for k, v in data.items()}


def load(config_dir: Path, language) -> Messages:
    """The product's catalogues (config/i18n of this checkout), with a deployment's own i18n files as overrides:
    a city renames what it wants and inherits every message a new version adds."""
    catalogues = {}
    for lang in language.available:
        product = PRODUCT / f"{lang}.yaml"
        messages = _read(product)
        own = config_dir / "i18n" / f"{lang}.yaml"
        if own.is_file() and own.resolve() != product.resolve():
            overrides = _read(own)
            unknown = sorted(set(overrides) - set(messages))
            if unknown:
                raise ConfigError(f"{own}: key '{unknown[0]}': not a CityOps message; expected keys of {product}")
            messages.update(overrides)
        catalogues[lang] = messages
    reference_lang = language.default
    reference = set(catalogues[reference_lang])
    for lang, messages in catalogues.items():
        missing = sorted(reference - set(messages))
        extra = sorted(set(messages) - reference)
        if missing or extra:
            path = PRODUCT / f"{lang}.yaml"
            key = (missing or extra)[0]
            raise ConfigError(f"{path}: key '{key}': "
                              + (f"missing; expected every key of {reference_lang}.yaml" if missing
                                 else f"not in {reference_lang}.yaml; expected the same keys in every language"))
    return Messages(catalogues, language.default)
