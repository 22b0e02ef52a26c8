"""Differentiable co-search on the hot-start space (``--strategy differentiable``).

FBNet/ProxylessNAS-style relaxation of the search's own space, with DNA/Auto-NBA's accelerator
term: the pretrained model becomes a single-path supernet in which every ``kernel_pattern``,
``quantize`` and ``channel_cut`` dimension is a Gumbel-softmax over its choices (per-kernel pattern
masks; fixed-point weights with a straight-through estimator; output-channel masks in the channel
cut's importance order), trained for ``--epochs`` on the ``fit`` split with a hardware term from the
template's cost model (``costs``: per-choice tables on the current design, which the template's DSE
re-searches every few architecture steps). The most likely architectures are then handed to the
ordinary trial flow (prefilter, fine-tune, exact re-costing, finalize), so the guarantee is the
discrete search's.

``options`` (the strategy's options) and ``costs`` (NumPy) load no torch; ``supernet`` and
``train`` do, and are imported where a search trains.
"""
