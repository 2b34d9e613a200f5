"""Sources and destination instances (Segment's workspace model): who sends, and to which Kameleoon projects.

    model.py   Workspace, Source (its write keys), Instance (credentials, subscriptions, filters, consent)
    load.py    the KAMELEOON_WORKSPACE file, checked in full; secrets from the environment or files

Interface: ``load(path) -> Loaded`` (WorkspaceError naming the file and the path in it) and
``Workspace.source_of(write_key)``. Without a workspace file the KAMELEOON_* variables make one
source with one instance (service.api.server builds it). Next stages, per instance:
service.ingest's consent and Integrations object, then service.routing.
"""
