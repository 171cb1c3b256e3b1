"""Calibration: the testbed's charger response model fitted to a fleet's own step-test logs (issue 28).

``logs`` reads the logs (a long CSV: ``time_s, vehicle, setpoint_kw, power_kw`` and optionally ``model``), ``fit``
finds each setpoint step in them and fits the response model's parameters to it (start or ramp-down delay, ramp
rate, rise or fall time) with what the sampling allows to be known, and ``catalog`` gathers the steps per vehicle
and per model (mean, spread, count, 95 % interval) into a vehicle catalog in the format of
``sims/data/vehicles.csv``, which a scenario lists in ``fleet.catalogs``.
"""

from v2g_testbed.analysis.calibration.catalog import calibrate, write_catalog
from v2g_testbed.analysis.calibration.fit import StepFit, fit_steps
from v2g_testbed.analysis.calibration.logs import CalibrationError, read_logs

__all__ = ["CalibrationError", "StepFit", "calibrate", "fit_steps", "read_logs", "write_catalog"]
