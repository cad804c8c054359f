"""User commands: registration, display name, password, API keys, role, forgetting.

They answer `Accepted`, never `Decided`: a reply leaves out every personal field (the sealed
email, display name and key names, schemas.sensitive), so the state after a user command
cannot be rebuilt from it. The state comes from the read model, which opens the sealed
values with the user's data key (core.views.users); the routes wait for it there.
"""

from __future__ import annotations

from kernel.application import Accepted, Command, CommandSender, Pending, Rejected, send
from schemas.envelope import CommandPayload

COMMANDS_TOPIC = "user.commands"


async def submit(bus: CommandSender,
                 command: Command[CommandPayload]) -> Accepted | Rejected | Pending:
    """Send a user command and wait for its decision (its version, its redacted events)."""
    return await send(bus, COMMANDS_TOPIC, None, command)
