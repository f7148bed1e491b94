"""Soak benchmark: one day of DSMR 5 telegrams through the whole pipeline at full speed."""
