"""The command line's side of `pinworks policy calibrate`: run, print, exit 1 on refusal."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pinworks_router.calibration.command import CalibrationRefused, Method, calibrate, parse_margin
from pinworks_router.calibration.economics import Charges
from pinworks_router.calibration.report import as_dict, curve_dict, curve_lines, render
from pinworks_router.policy import PolicyError


def run_calibrate(out: Path, policy: Path | None, data_dir: Path | None,
                  max_wrong_rate: float | None, confidence: float | None, fmt: str,
                  method: str = Method.scored.value, second_opinion_margin: str | None = None
                  ) -> None:
    """Calibrate and print the report (`table` or `json`); a refusal or a bad policy exits 1."""
    try:
        result = calibrate(out, policy, data_dir, max_wrong_rate, confidence,
                           method=Method(method),
                           second_opinion_margin=parse_margin(second_opinion_margin))
    except CalibrationRefused as refused:
        if fmt == "json":
            print(json.dumps({"refused": str(refused), "curve": [curve_dict(p) for p in refused.curve]},
                             indent=2))
        else:
            print("\n".join(curve_lines(refused.curve, Charges.from_environment(), confidence or 0.95)))
        print(f"calibration refused: {refused}", file=sys.stderr)
        raise SystemExit(1) from None
    except (PolicyError, FileNotFoundError, ValueError) as exc:
        print(f"calibration refused: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if fmt == "json":
        print(json.dumps(as_dict(result), indent=2))
        return
    print("\n".join(render(result)))
