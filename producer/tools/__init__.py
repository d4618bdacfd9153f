"""Tools run by hand on the control side, not part of serving: calibration of the quality gate and leveller."""
