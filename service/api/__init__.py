"""The ways in: where a caller's request becomes an event for the stages below, and an outcome becomes its answer.

    server.py        the process: gRPC server (health, reflection, TLS, auth), the stages wired together, graceful stop
    workers.py       several serving processes on one port (KAMELEOON_WORKERS)
    decoding.py      method handlers: requests decoded by us (INVALID_ARGUMENT, not UNKNOWN), calls counted
    auth.py          bearer tokens on the gRPC port (KAMELEOON_AUTH_TOKENS)
    servicer.py      KameleoonDestination: typed RPCs, Send, SendBatch, SendStream, TestAuthentication
    outbox_admin.py  OutboxAdmin: stats and dead letters over gRPC
    pipeline.py      what every way in does with an event: ingest, route, deliver now or queue

Interface: ``create_server(config, address) -> App`` and ``serve(config, address)``.
Next stages: service.ingest, service.routing, then service.delivery or service.outbox.
"""
