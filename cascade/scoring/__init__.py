"""The learned correctness scorer: P(a tier's answer is correct) from what is known at run time.

- `ScoringInput`: the plain record scored (built from a live `VerifyContext`, a logged item or a
  stored run, so all three score alike); `features` turns it into named numbers.
- `Scorer`: a trained scorer, loaded from its versioned JSON file and applied with numpy only.
- `fit_scorer` / `cross_fit` (`cascade.scoring.train`, needs the `learn` extra): training, and
  predictions for each example from a scorer that never saw it.
- `calibration_report`: reliability bins, Brier, log loss and AUROC on held-apart predictions.
"""

from cascade.scoring.calibration import auroc, calibration_report
from cascade.scoring.features import features
from cascade.scoring.inputs import ScoringInput
from cascade.scoring.model import ANY_TIER, FORMAT, VERSION, Calibration, Head, Scorer

__all__ = [
    "ANY_TIER",
    "FORMAT",
    "VERSION",
    "Calibration",
    "Head",
    "Scorer",
    "ScoringInput",
    "auroc",
    "calibration_report",
    "features",
]
