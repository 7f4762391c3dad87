"""What the doctor reports: a finding, its severity, and the error "raise" mode raises."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ikkuna.core.errors import IkkunaError

#: Severities, most severe first: ``error`` (training is broken), ``warning`` (training is
#: probably wasting steps), ``info`` (worth knowing, e.g. a rule that failed).
SEVERITIES = ("error", "warning", "info")


def severity_rank(severity: str) -> int:
    """0 for the most severe; a severity not in :data:`SEVERITIES` is refused."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValueError(
            f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}"
        ) from None


@dataclass(frozen=True)
class Finding:
    """One problem a rule found in a run.

    ``layers``: the layers it concerns, in model order (empty for the run as a whole).
    ``steps``: (first, last) step of the evidence. ``evidence``: the metric values that show
    it, by a short label such as ``"gradient_norm 0.weight"``. ``hint``: what a person can do.
    """

    rule: str
    severity: str
    message: str
    hint: str
    layers: tuple[str, ...] = ()
    steps: tuple[int, int] = (0, 0)
    evidence: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        severity_rank(self.severity)
        object.__setattr__(self, "layers", tuple(self.layers))
        first, last = (int(s) for s in self.steps)
        object.__setattr__(self, "steps", (first, last))
        object.__setattr__(self, "evidence",
                           MappingProxyType({str(k): float(v) for k, v in self.evidence.items()}))

    def __reduce__(self):  # the read-only evidence mapping does not pickle by itself
        return (type(self), (self.rule, self.severity, self.message, self.hint, self.layers,
                             self.steps, dict(self.evidence)))

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        """What makes two findings the same problem (live mode reports each key once)."""
        return (self.rule, self.layers)

    @property
    def order(self) -> tuple[int, int]:
        """Sort key: most severe first, then the earliest evidence (a stable sort keeps the
        order the rules ran in among equals: the built-in NaN origin first)."""
        return (severity_rank(self.severity), self.steps[0])

    def describe(self) -> str:
        """The finding in a few lines of text (what the CLI prints and warnings say)."""
        where = f" in {', '.join(self.layers)}" if self.layers else ""
        span = f"step {self.steps[0]}" if self.steps[0] == self.steps[1] else \
            f"steps {self.steps[0]}-{self.steps[1]}"
        lines = [f"{self.severity}: {self.rule}{where} ({span}): {self.message}"]
        if self.evidence:
            lines.append("  evidence: " + ", ".join(
                f"{label} = {_number(value)}" for label, value in self.evidence.items()))
        lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()


def _number(value: float) -> str:
    return str(value) if value == 0 or not math.isfinite(value) else f"{value:.3g}"


class TrainingProblem(IkkunaError):
    """Raised by a monitor attached with ``doctor="raise"``; ``.finding`` says what and where."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(f"ikkuna doctor: {finding.describe()}")
        self.finding = finding

    def __reduce__(self):  # keep .finding when pickled (multiprocessing, frameworks)
        return (type(self), (self.finding,))


class TrainingWarning(RuntimeWarning):
    """Warned by a monitor attached with ``doctor="warn"``, once per finding."""
