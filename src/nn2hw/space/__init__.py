"""iSpace: the joint search space of network changes, compression and hardware knobs.

``dimensions`` holds the space as data (and decodes index vectors into plans), ``config`` the
user's restrictions (``--space FILE``), ``build`` the construction from a workload, its
per-layer bottlenecks and the template's remedies, one registered transform at a time.
"""

from nn2hw.space.build import build_space
from nn2hw.space.config import SpaceConfig, TechniqueRule
from nn2hw.space.dimensions import (
    HARDWARE,
    Candidate,
    Dimension,
    JointCandidate,
    JointSpace,
    SearchSpace,
    knob_dimension,
    knob_name,
)

__all__ = ["HARDWARE", "Candidate", "Dimension", "JointCandidate", "JointSpace", "SearchSpace", "SpaceConfig",
           "TechniqueRule", "build_space", "knob_dimension", "knob_name"]
