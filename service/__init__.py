"""kameleoon-destination: Segment-spec events to Kameleoon over gRPC."""
