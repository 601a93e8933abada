"""Per-field setting metadata, declared once on the settings dataclasses.

A settings field says its limits, unit, step and whether it may change while the node runs
with `setting(...)`; the node.yaml loader, the MQTT controls, Home Assistant discovery and the
SIGHUP reload all read it from there, so a limit is never written twice.

    threshold: float = setting(0.6, low=0.0, high=1.0, step=0.01, live=True)
    \"\"\"Smoothed probability a command needs to be reported.\"\"\"
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import MISSING, dataclass
from typing import Any

NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", re.ASCII)
"""A plain decimal number as text (no `nan`, `inf`, hex or underscores)."""


@dataclass(frozen=True)
class Meta:
    """What a setting's field declares besides its type, default and docstring."""

    low: float | None = None
    """Smallest allowed value (inclusive); None: no lower limit."""
    high: float | None = None
    """Largest allowed value (inclusive); None: no upper limit."""
    above: float | None = None
    """The value must be greater than this (an exclusive lower limit, e.g. a duration > 0)."""
    unit: str = ""
    """Unit shown beside the value (Home Assistant's `unit_of_measurement`)."""
    step: float | None = None
    """Step of a Home Assistant number control."""
    live: bool = False
    """Applied to the running node (SIGHUP, MQTT) without a restart."""
    means: str = ""
    """What the range stands for, for error messages (e.g. `a TCP port`)."""

    def describe(self) -> str:
        """The allowed range in words."""
        if self.low is not None and self.high is not None:
            return f"within {self.low:g}..{self.high:g}"
        parts = [f"{sign} {limit:g}" for sign, limit in
                 ((">=", self.low), (">", self.above), ("<=", self.high)) if limit is not None]
        return " and ".join(parts) or "any number"

    def allows(self, value: float) -> bool:
        """In range and finite: no setting means anything at infinity or NaN."""
        return (math.isfinite(value)
                and (self.low is None or value >= self.low)
                and (self.above is None or value > self.above)
                and (self.high is None or value <= self.high))

    def check(self, where: str, value: Any) -> None:
        """Raise ValueError naming `where` when a number is out of range."""
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return
        if not self.allows(value):
            if self.means:
                raise ValueError(f"{where} {value} is not {self.means} ({self.describe()})")
            raise ValueError(f"{where} must be {self.describe()}, got {value}")

    def parse(self, text: str) -> float:
        """A number typed as text (an MQTT payload), checked against the limits."""
        if not NUMBER.fullmatch(text):
            raise ValueError(f"expected a number, got {text!r}")
        value = float(text)
        if not self.allows(value):
            raise ValueError(f"{text} is outside {self.describe().removeprefix('within ')}")
        return value


NO_META = Meta()


def check_finite_tree(value: Any, where: str) -> None:
    """Raise ValueError naming the first NaN or infinity anywhere in parsed JSON/YAML (Python's
    json accepts `NaN` and `Infinity`; a manifest or payload carrying one is refused)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value} is not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite_tree(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_finite_tree(item, f"{where}[{i}]")


def number(text: str) -> float:
    """A finite number typed on a command line (argparse `type=`): `nan` and `inf` are not."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def setting(default: Any = MISSING, *, default_factory: Any = MISSING,
            low: float | None = None, high: float | None = None, above: float | None = None,
            unit: str = "", step: float | None = None, live: bool = False,
            means: str = "") -> Any:
    """A dataclass field carrying its `Meta`."""
    meta = {"setting": Meta(low, high, above, unit, step, live, means)}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def meta(cls: Any, name: str) -> Meta:
    """The metadata of field `name` of settings class (or instance) `cls`."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("setting", NO_META)
    raise KeyError(f"{getattr(cls, '__name__', type(cls).__name__)} has no setting {name!r}")


def check_limits(settings: Any, section: str) -> None:
    """Check every numeric field of a settings object against its declared limits."""
    for f in dataclasses.fields(settings):
        declared = f.metadata.get("setting")
        if declared is not None:
            declared.check(f"{section}.{f.name}" if section else f.name,
                           getattr(settings, f.name))


def is_live(config: Any, dotted: str) -> bool:
    """Whether the setting at `dotted` (e.g. `detector.threshold`) may change while running."""
    target = config
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(target):
            return False
        if meta(target, part).live:
            return True
        target = getattr(target, part)
    return False
