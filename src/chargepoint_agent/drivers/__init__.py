"""Drivers: what carries out an accepted command on the charger (DESIGN §7).

`base` holds the contract (`Driver`, `DriverError`, units), `schedule` the pure OCPP 2.0.1-style
profile rules, `sim` the simulated charger. Imports nothing from ads_ledger: a driver knows
commands only as already-verified calls.
"""

from chargepoint_agent.drivers.base import ACTIONS, OWNER_STACK_LEVEL, Data, Driver, DriverError
from chargepoint_agent.drivers.sim import SimCharger

__all__ = ["ACTIONS", "OWNER_STACK_LEVEL", "Data", "Driver", "DriverError", "SimCharger"]
