"""The core service's application layer: one module per family that takes commands.

A handler takes a typed command (`kernel.application.Command`: a `schemas` payload, its
aggregate, the actor and the command id), dispatches it through `kernel.application` and
returns a typed outcome: `Decided` (the state after it, rebuilt with the aggregate's own
`evolve`), `Accepted` (decided, state not known here), `Rejected` or `Pending`. Routes parse,
authorize, call one handler and map its outcome to HTTP; sagas (a purchase) live here.
Assessments and accounts take no command from the API (the assessment policy sends theirs),
so they have no module here.
"""
