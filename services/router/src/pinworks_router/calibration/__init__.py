"""Calibrating the routing policy to an error budget with a finite-sample guarantee.

`ltt` (Learn then Test: fixed-sequence testing with binomial or Hoeffding–Bentkus p-values),
`scored` + `wrongness` + `scored_run` (the default method: a learned family of per-intent
thresholds, learned on one part of the set and certified on the other), `cells` (the other
method: a threshold grid per cell, Bonferroni across cells), `dataset` (the calibration set),
`curve` (risk–coverage), `economics` (cost with people in it), `writer` (the calibrated policy),
`command` + `report` (`pinworks policy calibrate`).
"""
