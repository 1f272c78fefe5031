"""SemaFore Sim: reference protocol, relay, simulator and interop gate for SemaFore."""

__version__ = "0.1.0"
