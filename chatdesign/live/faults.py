"""Injected faults on the delivery paths: a slowed network link.

Theory of operation. A :class:`SlowLink` names one kind of link on every PoP's path and the PoPs
(or origin caches) whose link is slowed, and scales what the simulation reads of that link in
:class:`~chatdesign.live.topology.PathDelays`:

- ``"player_edge"``: players → edge cache of the named PoPs (last mile + proxy hop). Its one-way
  delay ``player_edge_s`` is multiplied by ``delay_factor``, so every request there, hit or
  miss, takes ``2 x (delay_factor - 1) x player_edge_s`` longer; and its bandwidth
  ``link_gbps`` by ``bandwidth_factor``, which lowers the PoP's derived capacity
  (``pop_capacity_rps="derived"``) and lengthens each transfer when ``queueing=True``.
- ``"edge_origin"``: edge cache → origin cache of the named PoPs. ``edge_origin_s`` is
  multiplied by ``delay_factor``: an edge miss there takes ``2 x (delay_factor - 1) x
  edge_origin_s`` longer (and a push reaches the PoP later); hits do not cross it.
- ``"origin_server"``: origin cache → origin server for the named origin caches.
  ``origin_server_s`` is multiplied by ``delay_factor``: an origin-cache miss takes
  ``2 x (delay_factor - 1) x origin_server_s`` longer.

The model has no bandwidth on the two upstream links (a segment's fetch costs one round trip
there), so ``bandwidth_factor`` applies to ``"player_edge"`` only; anything else is refused
rather than ignored. The slowed delays are applied where both simulations read the topology
(:func:`chatdesign.live.simulate.scenario_paths`), so the vectorised model and the SimPy oracle
see the same slowed link. :class:`chatdesign.live.loadtest.Scenario` injects it mid-stream as
the ``link_slowed`` failure.

Taught in ``notebooks/10_load_prediction_and_testing.ipynb``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from chatdesign.checks import check_number, check_whole
from chatdesign.live.topology import PathDelays

__all__ = ["LINKS", "SlowLink"]

Link = Literal["player_edge", "edge_origin", "origin_server"]
LINKS: tuple[Link, ...] = ("player_edge", "edge_origin", "origin_server")
"""The links a :class:`SlowLink` can slow, from the player up."""


@dataclass(frozen=True)
class SlowLink:
    """A slowed link: ``link`` (one of :data:`LINKS`) at ``pops`` (PoP numbers; for
    ``"origin_server"``, origin-cache numbers), ``None`` for all of them.

    ``delay_factor`` (>= 1) multiplies the link's one-way delay; ``bandwidth_factor`` (in
    (0, 1]) its bandwidth, for ``"player_edge"`` only (the upstream links have no bandwidth in
    the model). Raises ``ValueError`` for an unknown link, a factor out of range, or repeated
    or negative numbers; :class:`~chatdesign.live.arrivals.LiveScenario` checks the numbers
    against its PoPs and origin caches.
    """

    link: Link
    pops: tuple[int, ...] | None = None
    delay_factor: float = 1.0
    bandwidth_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.link not in LINKS:
            raise ValueError(f"link must be one of {', '.join(map(repr, LINKS))}, got {self.link!r}")
        check_number(self.delay_factor, "delay_factor", minimum=1)
        check_number(self.bandwidth_factor, "bandwidth_factor", positive=True, maximum=1)
        if self.bandwidth_factor != 1 and self.link != "player_edge":
            raise ValueError(f"bandwidth_factor applies to the 'player_edge' link only: the model has no "
                             f"bandwidth on {self.link!r}, only a delay (use delay_factor)")
        if self.pops is not None:
            if not isinstance(self.pops, (tuple, list)):
                raise ValueError(f"pops must be a tuple of {self.unit} numbers or None, got {self.pops!r}")
            numbers = tuple(check_whole(p, "pops", minimum=0) for p in self.pops)
            if not numbers:
                raise ValueError("pops must name at least one number, or be None for all")
            if len(set(numbers)) != len(numbers):
                raise ValueError(f"pops repeats a number: {numbers!r}")
            object.__setattr__(self, "pops", numbers)

    @property
    def unit(self) -> str:
        """What ``pops`` numbers: ``"PoP"`` or, for ``"origin_server"``, ``"origin cache"``."""
        return "origin cache" if self.link == "origin_server" else "PoP"

    def check_against(self, pops: int, origin_caches: int) -> None:
        """Raise ``ValueError`` if a number in ``pops`` names no PoP (origin cache) of a
        topology with ``pops`` PoPs and ``origin_caches`` origin caches."""
        count = origin_caches if self.link == "origin_server" else pops
        beyond = [p for p in self.pops or () if p >= count]
        if beyond:
            raise ValueError(f"slow_link names {self.unit} {beyond[0]}, but there are only {count} "
                             f"({self.unit}s are numbered 0..{count - 1})")

    def apply(self, delays: PathDelays) -> PathDelays:
        """``delays`` with this link slowed (a new value; ``delays`` is unchanged)."""
        self.check_against(delays.pops, len(delays.origin_server_s))
        field = {"player_edge": "player_edge_s", "edge_origin": "edge_origin_s",
                 "origin_server": "origin_server_s"}[self.link]
        values: np.ndarray = getattr(delays, field)
        chosen = np.zeros(len(values), dtype=bool)
        chosen[list(self.pops) if self.pops is not None else slice(None)] = True
        changes = {field: np.where(chosen, values * self.delay_factor, values)}
        if self.bandwidth_factor != 1:
            changes["link_gbps"] = np.where(chosen, delays.link_gbps * self.bandwidth_factor, delays.link_gbps)
        return dataclasses.replace(delays, **changes)

    def __repr__(self) -> str:
        where = "all" if self.pops is None else ",".join(map(str, self.pops))
        bandwidth = "" if self.bandwidth_factor == 1 else f", bandwidth x{self.bandwidth_factor:g}"
        return f"SlowLink({self.link} at {self.unit}s {where}: delay x{self.delay_factor:g}{bandwidth})"
