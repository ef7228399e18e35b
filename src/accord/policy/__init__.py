"""Release policy: what a partner organisation may receive, and in what shape (issue 6).

Pure: a policy is parsed from TOML once (:func:`~accord.policy.parse.decode_policy`), then
:func:`~accord.policy.apply.decide` maps (event, policy, now, state) to a decision — Release
(the transformed event), Withhold (why) or Delay (until when). No clock, no I/O.

- *rule*: one ordered ``[[rule]]``; the first that matches decides; none matching = withhold.
- *pseudonym*: HMAC-SHA256 of (partner, uid) under the policy's key, hex, prefixed.
- *cell*: a fixed grid square (``grid_m`` metres) whose centre replaces the position.
- *marking*: the ``<__release>`` detail child on every released event.
"""

from accord.policy.apply import (
    Decision,
    Delay,
    Outcome,
    PolicyCounters,
    PolicyState,
    Release,
    Withhold,
    decide,
)
from accord.policy.lines import Issue, PolicyError
from accord.policy.model import Policy
from accord.policy.parse import decode_policy

__all__ = [
    "Decision",
    "Delay",
    "Issue",
    "Outcome",
    "Policy",
    "PolicyCounters",
    "PolicyError",
    "PolicyState",
    "Release",
    "Withhold",
    "decide",
    "decode_policy",
]
