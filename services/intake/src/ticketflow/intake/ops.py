"""The operators' commands intake executes (`ops.commands`), each in every running instance:
pausing and resuming a desk's intake (`Intake.pause_desk` / `resume_desk`), and reloading the desk
configuration (the tenants and their secrets, read again and validated; a broken file is refused and
the running configuration stays)."""

from __future__ import annotations

import asyncio

from ticketflow.contracts.ops import OpsCommandEnvelope, PauseIntake, ResumeIntake
from ticketflow.intake.app import Intake
from ticketflow.intake.http import Webhooks
from ticketflow.intake.platforms.botx import BotxGateway
from ticketflow.intake.settings import IntakeSettings
from ticketflow.intake.tenants import ConfigError, load_tenants
from ticketflow.runtime.ops_commands import Counts, OpsRejected
from ticketflow.runtime.service import Runtime


def register(rt: Runtime, settings: IntakeSettings, intake: Intake, webhooks: Webhooks) -> None:
    def known(desk_id: str) -> str:
        if desk_id not in intake.desk_ids():
            raise OpsRejected(f"intake serves no desk {desk_id!r} (it serves {', '.join(sorted(intake.desk_ids()))})")
        return desk_id

    async def pause(command: PauseIntake, envelope: OpsCommandEnvelope) -> Counts:
        await intake.pause_desk(known(command.desk_id), envelope.actor, envelope.command_id)
        return {"paused": len(intake.pauses.paused) if intake.pauses else 0}

    async def resume(command: ResumeIntake, _: OpsCommandEnvelope) -> Counts:
        recorded, failed = await intake.resume_desk(known(command.desk_id))
        return {"recorded": recorded, "not_recorded": failed}

    async def reload() -> Counts:
        tenants = await asyncio.to_thread(load_tenants, settings.tenants)
        old, webhooks.botx = webhooks.botx, BotxGateway(tenants)
        intake.tenants = tenants
        await old.close()
        return {"desks": len(intake.desk_ids()), "disabled_tenants": len(tenants.disabled)}

    rt.on_ops(PauseIntake, pause, each_instance=True)
    rt.on_ops(ResumeIntake, resume, each_instance=True)
    rt.on_desk_reload(reload, ConfigError)
