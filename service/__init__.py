"""kameleoon-destination: Segment-spec events to Kameleoon over gRPC.

The subpackages, in the order an event meets them (docs/architecture.md walks one through):

    api/        the ways in: the gRPC server, its servicers, and the pipeline calling the stages below
    ingest/     a raw event's JSON text -> one Segment event
    routing/    destination filters, subscriptions, mappings, Kameleoon's actions and validation -> bodies
    outbox/     queued delivery: bodies committed, then claimed and posted by the deliverer
    delivery/   the only HTTP client: Kameleoon's endpoint, retries, idempotency, sync delivery
    reload/     the subscriptions and filters files, put in force again when they change
    ops/        metrics, logs, traces
    demo/       a local Kameleoon stand-in and ``make demo``

Shared by all: config/ (the settings table), errors.py (one error tree, mapped to gRPC codes),
jsonwire.py (JSON as JavaScript writes it), cli.py (the command line).
"""
