"""chatdesign: a system-design textbook that runs.

The package holds every model, calculator and server the notebooks use; the notebooks under
``notebooks/`` import it and never re-implement it. Subpackages:

- :mod:`chatdesign.units` -- sizes, rates and durations (``parse_bytes("1.5 TB")``).
- :mod:`chatdesign.estimation` -- back-of-the-envelope calculators (RPS, storage, tiers).
- :mod:`chatdesign.chat` -- the chat service: a core without I/O and a SQLite-backed server.
- :mod:`chatdesign.presence` -- online status: heartbeats, tiers, batching, TTL stores.
- :mod:`chatdesign.live` -- live-video delivery: topology, segments, caches, simulation.
"""

__version__ = "0.1.0"
