"""Scores of a batch of candidates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_KEYS = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec", "c", "pdms", "epdms")


@dataclass
class ScoreResult:
    """NAVSIM sub-scores and totals, each a (G,) float array (one entry per candidate).

    ``nc … c`` are the candidate's own sub-scores (before the EPDMS human filter); ``epdms`` applies the
    filter (see ``filtered``). ``ep`` follows NAVSIM v2 (raw progress over the best progress masked by
    NC·DAC·DDC·TLC, clipped to [0, 1]), ``ep_pdms`` NAVSIM v1.1 (masked progress, masked by NC·DAC);
    ``pdms`` uses ``ep_pdms`` and ``c``.

    Diagnostics: ``progress`` raw route progress [m]; ``oncoming_progress`` worst 1 s progress in
    oncoming lanes [m]; ``collision_time`` / ``ttc_time`` first at-fault collision / TTC violation [s]
    (inf where none); ``reference_progress`` the PDM-Closed reference's masked progress [m] (nan when
    unused); ``human`` the human trajectory's sub-scores (empty without the filter); ``filtered`` the
    sub-scores after the filter; ``states`` (G, N, 9) simulated bicycle states in the map frame when
    requested.
    """

    nc: np.ndarray
    dac: np.ndarray
    ddc: np.ndarray
    tlc: np.ndarray
    ep: np.ndarray
    ttc: np.ndarray
    lk: np.ndarray
    hc: np.ndarray
    ec: np.ndarray
    c: np.ndarray
    pdms: np.ndarray
    epdms: np.ndarray
    progress: np.ndarray
    ep_pdms: np.ndarray
    oncoming_progress: np.ndarray
    collision_time: np.ndarray
    ttc_time: np.ndarray
    reference_progress: float = float("nan")
    human: dict[str, float] = field(default_factory=dict)
    filtered: dict[str, np.ndarray] = field(default_factory=dict)
    states: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.pdms)

    def row(self, i: int) -> dict[str, float]:
        """Candidate ``i`` as ``{"NC": …, …, "PDMS": …, "EPDMS": …}``."""
        return {k.upper(): float(getattr(self, k)[i]) for k in _KEYS}

    def columns(self) -> dict[str, np.ndarray]:
        """Every candidate at once: ``{"NC": (G,), …, "PDMS": (G,), "EPDMS": (G,)}``."""
        return {k.upper(): np.asarray(getattr(self, k), np.float64) for k in _KEYS}

    def mean(self) -> dict[str, float]:
        """Batch means with the same keys as :meth:`row`."""
        return {k.upper(): float(np.mean(getattr(self, k))) for k in _KEYS}
