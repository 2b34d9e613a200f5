"""kameleoon-destination's callers' package: the generated stubs (``kameleoon.destination.v1``)
and a small client (``kameleoon.destination.client``)."""
