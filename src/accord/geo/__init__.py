"""Geodesy and separation prediction: a pure layer (no I/O, no clock; time is passed in).

Vocabulary:

- *track*: one aircraft's last reported state (:class:`~accord.geo.track.Track`): where, how fast,
  how well known, when.
- *plane*: the local east-north-up tangent plane around one track (:mod:`accord.geo.enu`), on
  DAIDALUS's spherical earth, in which a pair is compared.
- *volume*: the cylinder (horizontal ``H``, vertical ``V``) two tracks must not share, widened by
  what is uncertain about them (:mod:`accord.geo.volume`).
- *encounter*: what one evaluation of a pair at one instant finds: time of loss of separation,
  CPA, the raw level (:mod:`accord.geo.encounter`).
- *level*: 0 none, 1 caution, 2 warning, 3 loss of separation; the *alert* is the level after
  DAIDALUS's alerting logic (M of N, persistence, hysteresis; :mod:`accord.geo.alerting`).
- *monitor*: the per-pair state for own tracks against every other track, behind a spatial
  index (:mod:`accord.geo.monitor`, :mod:`accord.geo.grid`).
"""
