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


def load(config_dir: Path, language) -> Messages:
    catalogues = {}
    for lang in language.available:
        path = config_dir / "i18n" / f"{lang}.yaml"
        data = config_files.read_yaml(path)
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ConfigError(f"{path}: expected a flat mapping of message keys to text")
        catalogues[lang] = {str(k): v for k, v in data.items()}
    reference_lang = language.default
    reference = set(catalogues[reference_lang])
    for lang, messages in catalogues.items():
        missing = sorted(reference - set(messages))
        extra = sorted(set(messages) - reference)
        if missing or extra:
            path = config_dir / "i18n" / f"{lang}.yaml"
            key = (missing or extra)[0]
            raise ConfigError(f"{path}: key '{key}': "
                              + (f"missing; expected every key of {reference_lang}.yaml" if missing
                                 else f"not in {reference_lang}.yaml; expected the same keys in every language"))
    return Messages(catalogues, language.default)
