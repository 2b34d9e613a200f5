"""Generated gRPC stubs for kameleoon.destination.v1 (``make proto``). Never edit the *_pb2 files by hand."""
