"""Running the service with no Kameleoon: a local stand-in and the end-to-end demo.

sink.py   KameleoonSink: an HTTP server answering as Kameleoon does, keeping what it received
run.py    ``make demo``: the service and a sink, one event per action over gRPC, what the sink got
"""
