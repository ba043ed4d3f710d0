"""Development stack: real servers on free loopback ports, for tests and ``make run``.

- :mod:`devstack.postgres`: :class:`~devstack.postgres.EmbeddedPostgres`, database helpers.
- :mod:`devstack.nats`: :class:`~devstack.nats.EmbeddedNats` (JetStream).
- :mod:`devstack.ports`: free-port helper.
- :mod:`devstack.process`: :class:`~devstack.process.EmbeddedServerError`, process plumbing.

Submodules are imported explicitly so that light tools here do not pull in server clients.
"""
