"""Built-in NAS benchmark spaces as pure encodings and schedules (no torch).

``fbnet``: the FBNet space (22 blocks x 9 candidate blocks, HW-NAS-Bench's layout) and its block
schedule; ``nb201``: the NAS-Bench-201 cell space (5 ops on 6 edges) and its encodings. They sit
here, below both ``nn2hw.bench`` (costs, torch-free workloads) and ``nn2hw.zoo`` (torch modules),
so that both read one definition of each space.
"""
