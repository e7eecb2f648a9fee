"""The service: the FastAPI app (``serving.app:create_app``) and what it owns (``serving.services.Services``),
the routes per resource (``serving.routes``), the auth dependency and roles (``serving.auth``,
``serving.dependencies``), the request and response schemas (``serving.schemas``), the one mapping of
domain errors to HTTP (``serving.errors``), the decision at checkout (``serving.next_best_offer``), the
console (``serving.console``) and the ``nbo`` command line (``serving.cli``).

It imports ``engine``, ``recommender`` and the model loading of ``training``; never ``tools`` (only the
command line does, for benchmarks, synthetic data and the demo).
"""
