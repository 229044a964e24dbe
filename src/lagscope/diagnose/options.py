"""What one diagnose run was asked to do: :class:`DiagnoseOptions`, and the :class:`Plan` of
how many requests each rung sends within its own time budget (``QUICK`` for ``--quick``).
Pure: the rungs read these, nothing here measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lagscope.diagnose.browser import BrowserAsk
from lagscope.diagnose.thresholds import DEFAULT_THRESHOLDS, Thresholds
from lagscope.dsn import Dsn
from lagscope.probe.options import ProbeOptions

__all__ = ["MIN_SAMPLES", "QUICK", "DiagnoseOptions", "Plan"]

# The fewest samples per series that give a 95 % interval for the median.
MIN_SAMPLES = 6


@dataclass(frozen=True)
class Plan:
    """How many requests each rung sends, and its own time budget (seconds)."""

    resolve_samples: int = 3
    sequence: int = 10
    burst_clients: int = 6
    burst_requests: int = 2
    cold: int = 15
    warm: int = 25
    coldwarm_s: float = 6.0
    queue_levels: tuple[int, ...] = (1, 2, 4, 8)
    queue_requests: int = 4
    queue_level_s: float = 1.5
    direct_cold: int = 8
    direct_warm: int = 15
    direct_s: float = 4.0
    db_samples: int = 5
    back_to_back: int = 20
    back_to_back_s: float = 1.0
    # At least MIN_SAMPLES: the fewest that give a 95 % interval for the median.
    split_samples: int = 8
    split_idle_max_s: float = 0.6
    # The idle watch's connection must have sat idle this long before the run ends (it
    # waits for it when the rungs were quicker): uvicorn closes idle connections after 5 s,
    # gunicorn after 2 s. --quick only looks at what the run's own length shows.
    idle_wait_s: float = 5.5


QUICK = Plan(
    resolve_samples=2,
    sequence=6,
    burst_clients=4,
    burst_requests=1,
    cold=8,
    warm=10,
    coldwarm_s=1.5,
    queue_levels=(1, 2, 4),
    queue_requests=2,
    queue_level_s=0.5,
    direct_cold=6,
    direct_warm=6,
    direct_s=1.0,
    db_samples=3,
    back_to_back=12,
    back_to_back_s=0.5,
    split_samples=MIN_SAMPLES,
    idle_wait_s=0.0,
)


@dataclass(frozen=True)
class DiagnoseOptions:
    probe: ProbeOptions  # the target, headers, pins, TLS, timeout and the run's max time
    direct: ProbeOptions | None = None
    database: Dsn | None = None  # parsed: a bad one failed before anything was measured
    allow_load: bool = False
    quick: bool = False
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    command: tuple[str, ...] = ()
    plan: Plan = field(default_factory=Plan)
    browser: BrowserAsk | None = None  # --browser: a real browser loads the URL last

    def __post_init__(self) -> None:
        if self.quick and self.plan == Plan():
            object.__setattr__(self, "plan", QUICK)
