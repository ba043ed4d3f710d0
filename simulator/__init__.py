"""Simulator of a faulty crypto trade data provider, with a ground truth.

Public API for tests and tools: `run_simulator`, `RunningSimulator`, `SimConfig`,
`TapeParams`, `WsFaultRates`, `RestFaultRates`, `PROFILES`.
"""

from simulator.app import RunningSimulator, run_simulator
from simulator.config import SimConfig, load_config
from simulator.faults import RestFaultRates, WsFaultRates
from simulator.profiles import PROFILE_NAMES, PROFILES
from simulator.tape import TapeParams

__all__ = [
    "PROFILES",
    "PROFILE_NAMES",
    "RestFaultRates",
    "RunningSimulator",
    "SimConfig",
    "TapeParams",
    "WsFaultRates",
    "load_config",
    "run_simulator",
]
