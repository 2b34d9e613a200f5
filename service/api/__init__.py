"""The ways in: where a caller's request becomes an event for the stages below, and an outcome becomes its answer.

    server.py          the process: gRPC server (health, reflection, TLS, auth), the stages wired together, graceful stop
    workers.py         several serving processes on one port (KAMELEOON_WORKERS)
    decoding.py        method handlers: requests decoded by us (INVALID_ARGUMENT, not UNKNOWN), calls counted
    auth.py            who may call what on the gRPC port (write keys, KAMELEOON_AUTH_TOKENS, KAMELEOON_ADMIN_TOKENS)
    servicer.py        KameleoonDestination: typed RPCs, Send, SendBatch, SendStream, TestAuthentication, Preview
    http.py            Segment's HTTP Tracking API (KAMELEOON_HTTP_LISTEN)
    pipeline.py        what every way in does with an event: ingest, route, deliver now or queue; counted for the overview
    preview.py         Preview, the event tester: every stage's verdict and the request it would send
    outbox_admin.py    OutboxAdmin: stats, dead letters and one event's fate (event_fate.py) over gRPC
    overview_admin.py  DeliveryOverview: the funnel per instance and the samples (service.ops.overview)
    page/              the operator's page in a browser (KAMELEOON_ADMIN_LISTEN)
    preview_command.py, admin_commands.py, remote.py   try, overview, samples, events show: the RPCs from a shell
    timestamps.py      protobuf Timestamps and epoch seconds

Interface: ``create_server(config, address) -> App`` and ``serve(config, address)``.
Next stages: service.ingest, service.routing, then service.delivery or service.outbox.
"""
