"""Generated gRPC stubs for kameleoon.destination.v1 (make proto). Do not edit the *_pb2 files."""
