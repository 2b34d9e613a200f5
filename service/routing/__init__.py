"""Routing: which events go where, and the exact body each one sends (Segment's semantics throughout).

    router.py         the configuration in force; filters, then subscriptions -> one body per match
    filters/          Segment's destination filters (FQL, drop, sample, properties)
    subscriptions.py  subscriptions: a trigger, an action and a mapping each (KAMELEOON_MAPPINGS, or the presets)
    mapping/          Segment's trigger language and mapping-kit directives, JavaScript's values
    planner.py        a subscription's mapping, validation and body compiled into one function
    actions/          Kameleoon's four actions: their field tables and Segment's ``perform`` body
    validation.py     a payload checked and coerced as Segment's runtime does (ajv)
    fields.py         one entry of an action's field table
    specfile.py       reading a JSON or YAML file of named entries (subscriptions, filters)

Interface: ``Router(subscriptions, filters)`` with ``filter_event``, ``filter_payload``, ``plan`` and
``payload_body``; InvalidArgument naming the field when an event is rejected. Next stage:
service.delivery (sync) or service.outbox (queued).
"""
