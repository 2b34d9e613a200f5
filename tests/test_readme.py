"""The README stays true: every setting is documented with its real default, every metric is listed."""

import pathlib
import re

from service.config import SETTINGS, Config
from service.ops.metrics import Metrics

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table():
    for _, variable, _, _ in SETTINGS:
        assert f"`{variable}`" in README, variable


def test_documented_defaults_are_the_real_ones():
    rows = dict(re.findall(r"^\| `(KAMELEOON_[A-Z_]+)` \| ([^|]+) \|", README, re.M))
    defaults = Config()
    for attribute, variable, _, _ in SETTINGS:
        if variable not in rows:
            continue  # rows naming two variables at once
        shown, value = rows[variable].strip(), getattr(defaults, attribute)
        if value in (None, ()):
            assert shown.startswith("none"), (variable, shown)
        elif isinstance(value, float) and value.is_integer():
            assert shown.strip("`") in (str(int(value)), str(value)), (variable, shown)
        else:
            assert shown.strip("`") == str(value), (variable, shown)


def test_every_metric_is_listed():
    for metric in Metrics().registry.collect():
        assert f"`{metric.name}" in README, metric.name
