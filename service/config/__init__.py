"""Server configuration, shared by every stage: the settings table and how its values are read.

    settings.py   Config (every setting with its default), SETTINGS (variable, parser, meaning), from_env
    values.py     one parser per kind of value, the outbox's URL forms and sealing key among them

Interface: ``from_env(environ) -> Config``, raising ConfigError naming the bad variable.
"""

from service.config.settings import DEFAULT_BASE_URL, SECRET_SETTINGS, SETTINGS, USER_AGENT, Config, from_env
from service.config.values import SITECODE_LENGTH, host_port

__all__ = ["DEFAULT_BASE_URL", "SECRET_SETTINGS", "SETTINGS", "SITECODE_LENGTH", "USER_AGENT", "Config", "from_env", "host_port"]
