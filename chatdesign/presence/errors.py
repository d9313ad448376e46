"""The errors :mod:`chatdesign.presence` raises.

Every one is a ``ValueError`` (the caller passed something wrong), so code that only wants to
refuse bad input can catch that; the subclasses say which rule was broken. A refused call changes
no stored state: each method checks everything before it writes.
"""

from __future__ import annotations


class PresenceError(ValueError):
    """Base class: a presence call was refused because of its input."""


class UnknownUserError(PresenceError):
    """The user id is not in the friends graph the service was built with."""


class NotAFriendError(PresenceError):
    """A viewer asked about a user who is not among the viewer's friends."""


class ClockWentBackwardsError(PresenceError):
    """``now`` (or the injected clock) is earlier than a time the service already used."""
