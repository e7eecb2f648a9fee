"""Builders and constants the specifications share, imported by name (conftest.py files hold only
fixtures and hooks: pytest advises against importing them).

``events`` (register, purchase), ``http`` (bearer), ``rules`` (rule files and a runtime over them),
``triggers`` (the trigger parts wired as serving wires them, members who lapsed), ``console``
(signing in, form tokens), ``audit``, ``models``, ``redis_dump``, ``fuzz``, ``clock`` (NOW),
``shop`` (the synthetic shop's dates), ``paths`` (REPO, the shared real data), ``personal_data`` (phones and
birth dates, and finding them in clear), ``redis_tls`` (certificates and a TLS redis-server).
"""
