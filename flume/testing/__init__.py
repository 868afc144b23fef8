"""Reusable conformance suites, in the spirit of JS test-flumelog: subclass one in a pytest
module with a factory for your log (:class:`LogConformance`) or view (:class:`ViewConformance`,
:class:`OnDiskViewConformance`) and pytest runs every check against it. They need ``pytest``
(the ``test`` extra)."""

from flume.testing.logs import LogConformance
from flume.testing.views import OnDiskViewConformance, ViewConformance

__all__ = ["LogConformance", "OnDiskViewConformance", "ViewConformance"]
