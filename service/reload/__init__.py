"""Configuration that changes without a restart: the subscriptions and filters files.

On SIGHUP, and when either file changes on disk (checked every
KAMELEOON_CONFIG_POLL_S seconds, a Kubernetes ConfigMap's symlink swap
included), the file is read, checked in full, and only then put in force; a
bad one is refused with a log line naming the problem and the old
configuration stays. Each version is a hash of the file's bytes, logged and
exported as ``kameleoon_config_version_info``. One module per job:

    sources.py    what a configuration is: its file, how it is parsed, its version
    watch.py      polling files for changes
    reloader.py   checking a new version and putting it in force
"""

from service.reload.reloader import Reloader
from service.reload.sources import Loaded, Source, sources_for

__all__ = ["Loaded", "Reloader", "Source", "sources_for"]
