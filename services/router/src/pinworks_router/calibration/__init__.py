"""Calibrating the routing policy to an error budget with a finite-sample guarantee.

`ltt` (Learn then Test: fixed-sequence testing of confidence thresholds with binomial or
Hoeffding–Bentkus p-values), `cells` (per intent where the data supports it, pooled where not),
`dataset` (the calibration set), `curve` (risk–coverage), `economics` (cost with people in it),
`writer` (the calibrated policy), `command` + `report` (`pinworks policy calibrate`).
"""
