"""SemaFore simulator: scenario files, a fleet of real clients, adversary views, the
plaintext-absence oracle (SPEC §8) and verdict reports.

Module map:

- :mod:`simulator.scenario` — the versioned YAML scenario format (model, loader, JSON Schema).
- :mod:`simulator.oracle` — searches every registered secret in every byte an adversary holds.
- :mod:`simulator.inventory` — which routing identifiers, timings and volumes each adversary saw
  (seed §2.2, §2.5).
- :mod:`simulator.report` — the result model the executor returns, verdicts and the terminal /
  JUnit / JSON / HTML renderings.
- :mod:`simulator.executor` — runs a :class:`~simulator.scenario.Scenario` against a provider.
"""
