"""What travels between pinworks services and what it is called, defined once.

`messages` (the pydantic models on the wire), `subjects` (subject, stream and handler names,
outcome statuses and stages, message-id formats), `intents` (the intent labels) and
`jsonlimits` (the limits every payload is decoded under). Depends on pydantic alone, so a
support platform or a tool can code against the contract without the service runtime.
"""
