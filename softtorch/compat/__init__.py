"""Drop-in shims for users of other soft-sorting libraries.

Each submodule copies one peer library's public names, signatures and conventions on top of
softtorch's own operators, so that moving over is one changed import line. Submodules are
imported on demand (``import softtorch.compat.torchsort``); none of the peers is a dependency.

* :mod:`softtorch.compat.torchsort`: torchsort 0.1.10's ``soft_sort`` and ``soft_rank`` (``"l2"``
  and ``"kl"``), on the isotonic solver of ``method="fast_soft_sort"``.
* :mod:`softtorch.compat.diffsort`: ``DiffSortNet`` (diffsort 0.2.0) and ``DiffTopkNet``
  (difftopk 0.2.0) on softtorch's sorting networks.
"""

__all__: list[str] = []
