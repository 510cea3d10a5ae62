"""Reviewed plans are durable: a held plan's saved file lives in the target's state folder
(private, integrity-checked), so a one-shot `setpoint approve` then `setpoint sync` in new
processes applies exactly the reviewed file; it is refused as stale (nothing applied, re-planned
and held again with the reason) when the state serial/lineage or the module moved, or when the
file was changed on disk."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from conftest import TfSetup, realistic_module, under

from setpoint.api import SyncStatus


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], capture_output=True,
                          text=True, timeout=300)


def sync_json(config: Path) -> dict[str, object]:
    proc = cli(config, "sync", "net", "-o", "json")
    return json.loads(proc.stdout)[0]  # type: ignore[no-any-return]


def plans_folder(tfs: TfSetup) -> Path:
    return tfs.tmp / "state" / "targets" / "net" / "terraform" / "plans"


def _v2(tfs: TfSetup, comment: str = "") -> dict[str, str]:
    """The same module with the web group opening 8443 too (an update, held by apply_policy manual)."""
    files = realistic_module(tfs.provider, tfs.world)
    files["main.tf"] = files["main.tf"].replace("web   = [443]", "web   = [443, 8443]") + comment
    return files


def _setup(tfs: TfSetup) -> Path:
    tfs.repo.commit(under("infra/net", realistic_module(tfs.provider, tfs.world)), "net")
    config = tfs.config({"apply_policy": "manual", "binary": tfs.terraform_bin})
    first = sync_json(config)
    assert first["held_plan"] and not (tfs.world / "prod-net-web.json").exists()
    assert cli(config, "approve", "net", str(first["held_plan"]), "--by", "carol").returncode == 0
    assert sync_json(config)["sync"] == "Synced"
    tfs.repo.commit(under("infra/net", _v2(tfs)), "net: 8443 for web")
    return config


def _ports(tfs: TfSetup) -> list[int]:
    return json.loads((tfs.world / "prod-net-web.json").read_text())["ingress_ports"]  # type: ignore[no-any-return]


def test_one_shot_approve_then_sync_applies_the_reviewed_file(tfs: TfSetup) -> None:
    config = _setup(tfs)
    held = sync_json(config)
    plan_id = str(held["held_plan"])
    assert plan_id and _ports(tfs) == [443]
    folder = plans_folder(tfs)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {p.name for p in folder.iterdir()} >= {f"{plan_id}.tfplan", f"{plan_id}.json"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    assert "s3cr3t-db-pass" not in (folder / f"{plan_id}.json").read_text()

    assert cli(config, "approve", "net", plan_id, "--by", "carol").returncode == 0
    done = cli(config, "sync", "net", "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _ports(tfs) == [443, 8443]
    assert not (folder / f"{plan_id}.tfplan").exists()  # the reviewed file was applied and consumed
    audit = json.loads(cli(config, "audit", "--action", "apply", "-o", "json").stdout)
    assert audit[-1]["details"]["plan_id"] == plan_id


def test_a_state_written_between_review_and_approval_is_refused_after_a_restart(tfs: TfSetup) -> None:
    config = _setup(tfs)
    plan_id = str(sync_json(config)["held_plan"])
    # someone else writes the same state (same content, a new serial) while the plan waits
    state_file = tfs.tmp / "state" / "targets" / "net" / "terraform" / "state" / "terraform.tfstate"
    state = json.loads(state_file.read_text())
    state["serial"] += 1
    state_file.write_text(json.dumps(state))

    assert cli(config, "approve", "net", plan_id, "--by", "carol").returncode == 0
    refused = cli(config, "sync", "net", "-o", "json")
    assert refused.returncode != 0
    outcome = json.loads(refused.stdout)[0]
    assert outcome["error_stage"] == "apply" and "stale" in outcome["error"] and "serial" in outcome["error"]
    assert _ports(tfs) == [443]

    again = sync_json(config)
    assert again["held_plan"] and again["held_plan"] != plan_id and _ports(tfs) == [443]
    status = json.loads(cli(config, "status", "-o", "json").stdout)[0]
    assert "refused the previously approved plan as stale: the state changed after plan" in status["message"]
    assert cli(config, "approve", "net", str(again["held_plan"]), "--by", "carol").returncode == 0
    assert sync_json(config)["sync"] == "Synced" and _ports(tfs) == [443, 8443]


def test_a_new_revision_or_a_changed_file_is_refused(tfs: TfSetup) -> None:
    config = _setup(tfs)
    plan_id = str(sync_json(config)["held_plan"])
    # a new commit that gives the same plan (a comment): the reviewed plan was made from another module
    tfs.repo.commit(under("infra/net", _v2(tfs, "\n# reviewed by the network team\n")), "net: comment")
    assert cli(config, "approve", "net", plan_id, "--by", "carol").returncode == 0
    outcome = sync_json(config)
    assert outcome["error_stage"] == "apply" and "module or its inputs changed" in str(outcome["error"])
    assert _ports(tfs) == [443]

    # the re-plan is held under a new id; its file is then swapped on disk before approval
    again = str(sync_json(config)["held_plan"])
    assert again != plan_id
    pinned = plans_folder(tfs) / f"{again}.tfplan"
    data = bytearray(pinned.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pinned.write_bytes(bytes(data))
    assert cli(config, "approve", "net", again, "--by", "carol").returncode == 0
    outcome = sync_json(config)
    assert outcome["error_stage"] == "apply" and "changed after it was reviewed" in str(outcome["error"])
    assert _ports(tfs) == [443]
    assert outcome["sync"] != SyncStatus.SYNCED.value
