"""Hypothesis profiles: the same examples on every machine in `make test`, fresh ones in `make test-slow`.

- ``ci`` (the default, and what ``make test`` selects): derandomized — each property draws the
  same examples on every run and every clone — with no example database (nothing in
  ``.hypothesis/`` can make a run pass or fail) and no shrinking (a failure is reported as
  drawn, at once, instead of after minutes of shrinking; it is the same failure everywhere).
  No deadline and no too-slow health check: both depend on the machine's load.
- ``dev``: the ``ci`` examples, shrunk when one fails (run the failing test with
  ``--hypothesis-profile=dev``): a failure of ``make test``, made small before debugging it.
- ``explore`` (``make test-slow``): random examples, a database in ``.hypothesis/`` that replays
  what failed before, shrinking on: fresh exploration, whose findings become ``@example``s.

Per-test ``@settings`` still set ``max_examples``; they leave randomness, the database and the
phases to the profile.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

_STEADY = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

settings.register_profile("ci", derandomize=True, database=None, phases=(Phase.explicit, Phase.generate), **_STEADY)
settings.register_profile("dev", derandomize=True, database=None,
                          phases=(Phase.explicit, Phase.generate, Phase.shrink), **_STEADY)
settings.register_profile("explore", derandomize=False, **_STEADY,
                          database=DirectoryBasedExampleDatabase(
                              os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                           ".hypothesis", "examples")))
# --hypothesis-profile (the hypothesis pytest plugin) loads another after this file is read
settings.load_profile("ci")
