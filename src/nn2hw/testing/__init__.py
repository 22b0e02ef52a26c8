"""Test material shipped with nn2hw: small reference networks (``nn2hw.testing.nets``) that exercise
every part of the workload IR, for nn2hw's own tests and for anyone checking a cost model or an
extractor against them."""
