"""What time it is for the city. A demo or a replay pins `clock.as_of`; a live deployment leaves it empty."""
from datetime import datetime

from core.settings import Config


def now(config: Config) -> datetime:
    as_of = config.settings.clock.as_of
    return as_of.astimezone(config.tz) if as_of else datetime.now(config.tz)
