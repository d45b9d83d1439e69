"""Efficiency factors of the step model, as the estimators see them.

The types and the lookup live in the catalog layer (`dsdeploy.catalog.calibration`): a calibration
is data, and the catalog must not import the estimators. This module re-exports them so that
estimator code and older callers keep one import path.
"""

from __future__ import annotations

from dsdeploy.catalog.calibration import (
    PARAM_BOUNDS,
    ROOFLINE,
    ROOFLINE_SOURCE,
    Calibration,
    GroupParams,
    class_family,
    epoch_of,
    load_calibration,
)

__all__ = [
    "PARAM_BOUNDS",
    "ROOFLINE",
    "ROOFLINE_SOURCE",
    "Calibration",
    "GroupParams",
    "class_family",
    "epoch_of",
    "load_calibration",
]
