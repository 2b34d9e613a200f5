"""Side-by-side benchmark of the service, Segment's runtime and raw HTTP (``python -m bench``)."""
