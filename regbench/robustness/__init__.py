"""The adversarial robustness track (AdvChain): how far a bounded, realistic perturbation of the moving image
can break a method. It sits on top of methods, metrics and tasks, like ``regbench.report``.

- ``scoring``: accuracy and error of a registration of a perturbed pair, with the official metric code;
- ``search``: random chains, CMA-ES for every method, and the records of the track;
- ``gradient``: gradient ascent through networks that implement ``differentiable_forward``.

The perturbation chain itself is ``regbench.advchain``.
"""

from regbench.robustness.gradient import Differentiable
from regbench.robustness.scoring import Score, score_perturbed, score_registration
from regbench.robustness.search import (BudgetResult, Found, RobustnessRecord, SearchSettings, robustness_records,
                                        search_budget)

__all__ = ["BudgetResult", "Differentiable", "Found", "RobustnessRecord", "Score", "SearchSettings",
           "robustness_records", "score_perturbed", "score_registration", "search_budget"]
