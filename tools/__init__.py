"""Tools beside the product: benchmarks, the load generator, soak and chaos runs, the synthetic data
generator and the demo's set-up. The product (``engine``, ``recommender``, ``training``, the service in
``serving``) never imports this package; the ``nbo`` command line does, for ``nbo bench``,
``nbo data generate``, ``nbo rules bench`` and ``nbo serve --demo``.

- ``tools.synthetic``: ``generate`` (synthetic convenience-store members and history)
- ``tools.demo``: ``prepare_demo`` (what ``make run`` starts with)
- ``tools.load``: ``fixed_rate``, ``saturate`` (an HTTP load generator in its own process)
- ``tools.benchmarks``: ``BenchService`` and ``nbo bench ingest | api | cluster``
- ``tools.rules_benchmark``, ``tools.triggers_benchmark``, ``tools.models_benchmark``: ``nbo bench rules |
  triggers | models``
- ``tools.soak``, ``tools.chaos``: ``nbo bench soak | chaos`` (``make soak``, ``make chaos``)
"""
