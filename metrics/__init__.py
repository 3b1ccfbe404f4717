"""Learn2Reg metrics, computed as the official evaluation computes them, and the Learn2Reg ranking.

One module per metric - ``dice``, ``hd95``, ``tre``, ``jacobian`` (SDlogJ and folding), ``ndv`` (LUMIR's
non-diffeomorphic volume), ``landmarks`` (LUMIR's TRE on landmark label maps), ``displacement_error``
(synthetic tasks) - plus the official label warp (``warp``), the evaluation config (``eval_config``), scoring
a folder into ``metrics.csv`` and ``evaluation.json`` (``evaluate``), what missing values score as
(``substitutes``) and the ranking (``ranking``).
"""
