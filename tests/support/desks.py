"""Desk directories for whole-system runs (chaos, bench-system): the packaged desks with the eXpress
client-support track (the public bot's, which has no SLA when packaged) given SLA clocks: it counts in the
around-the-clock calendar, with a first response of `first_response_minutes` for every priority.

    desks = client_track_with_sla(tmp / "desks", first_response_minutes=1)
    System(..., common={"TICKETFLOW_DESK_CONFIG_DIR": str(desks)})
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ticketflow.deskconfig.loader import load_desks

CLIENT_TRACK = """calendar = "client-support"
eligibility = ["end_user", "system_admin", "partner"]
sla = false"""
WITH_SLA = """calendar = "contract-premium"
eligibility = ["end_user", "system_admin", "partner"]"""


def client_track_with_sla(directory: Path, *, first_response_minutes: int) -> Path:
    packaged = resources.files("ticketflow.deskconfig") / "desks"
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("express.toml", "bitrix24-box.toml"):
        (directory / name).write_text((packaged / name).read_text(encoding="utf-8"), encoding="utf-8")
    express = directory / "express.toml"
    text = express.read_text(encoding="utf-8")
    if CLIENT_TRACK not in text:
        raise RuntimeError("the packaged client track changed: update tests/support/desks.py")
    policies = "".join(
        f'\n[[sla_policies]]\ntrack = "client"\npriority = "{priority}"\n'
        f"first_response_minutes = {first_response_minutes}\nresolution_minutes = 600\n"
        for priority in ("urgent", "high", "normal", "low")
    )
    express.write_text(text.replace(CLIENT_TRACK, WITH_SLA) + policies, encoding="utf-8")
    load_desks(directory)  # refuses what the services would refuse
    return directory
