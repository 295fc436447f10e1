"""The event stores' hash chain: `make verify-audit` finds every store whole, then names the stored event a
test alters, one it removes, and, past an anchor, the newest events rewritten together with their hashes."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from shared.migrations import AUDIT_CHAIN, migrate_schema
from tests.integration.harness import StackClient, complaint_body


def verify_audit(client: StackClient, *options: str) -> subprocess.CompletedProcess[str]:
    """`make verify-audit`, against this stack's database."""
    command = [sys.executable, "-m", "services.verify_audit", *options]
    return subprocess.run(command, env=client.stack.service_env(), capture_output=True, text=True, check=False)


async def newest_event(client: StackClient, complaint_id: str) -> tuple[int, int]:
    row = await client.database.fetchrow(
        "SELECT notification_id, originator_version FROM complaints.complaints_events"
        " WHERE originator_id = $1::uuid ORDER BY originator_version DESC LIMIT 1",
        complaint_id,
    )
    assert row is not None
    return row["notification_id"], row["originator_version"]


async def test_verify_audit_names_each_altered_or_removed_event(client: StackClient) -> None:
    hall = await client.register_hall()
    complaints = [(await client.post_complaint(complaint_body(hall))).json()["id"] for _ in range(3)]
    for complaint_id in complaints:
        assert (await client.step(complaint_id, "acknowledge")).status_code == 200
    await client.wait_until_scored()

    whole = await asyncio.to_thread(verify_audit, client, "--no-anchor")
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert "every chain is whole" in whole.stdout
    for schema in ("complaints", "escalation", "scoring"):
        assert f"{schema}: " in whole.stdout and "BROKEN" not in whole.stdout

    altered, _ = await newest_event(client, complaints[0])
    await client.database.execute(
        "UPDATE complaints.complaints_events"
        " SET state = convert_to(replace(convert_from(state, 'UTF8'), 'acknowledge', 'acknowledgf'), 'UTF8')"
        " WHERE notification_id = $1",
        altered,
    )
    removed, removed_version = await newest_event(client, complaints[1])
    await client.database.execute("DELETE FROM complaints.complaints_events WHERE notification_id = $1", removed)

    broken = await asyncio.to_thread(verify_audit, client, "--no-anchor")
    assert broken.returncode == 1, broken.stdout
    lines = [line for line in broken.stdout.splitlines() if line.startswith("BROKEN complaints: notification")]
    assert any(f"notification {altered} " in line and "does not match its hash" in line for line in lines), lines
    assert any(f"version {removed_version})" in line and "gone" in line for line in lines), lines
    assert len(lines) == 2, lines  # the third complaint, untouched, is not among them


async def test_rewriting_the_newest_events_with_their_hashes_breaks_the_anchor(client: StackClient) -> None:
    """The test above left two breaks, and no anchor. An anchor is taken only of a whole store, so this test
    first mends them by removing what they concern, chain and all (before an anchor, nothing can tell)."""
    await client.database.execute(
        "DELETE FROM complaints.event_hashes h WHERE NOT EXISTS (SELECT FROM complaints.complaints_events e"
        " WHERE e.originator_id = h.originator_id AND e.originator_version = h.originator_version)"
    )
    await client.database.execute(
        "DELETE FROM complaints.complaints_events e USING complaints.event_hashes h"
        " WHERE e.originator_id = h.originator_id AND e.originator_version = h.originator_version"
        " AND convert_from(e.state, 'UTF8') LIKE '%acknowledgf%'"
    )
    await client.database.execute(
        "DELETE FROM complaints.event_hashes h WHERE NOT EXISTS (SELECT FROM complaints.complaints_events e"
        " WHERE e.originator_id = h.originator_id AND e.originator_version = h.originator_version)"
    )
    anchored = await asyncio.to_thread(verify_audit, client)
    assert anchored.returncode == 0, anchored.stdout
    anchors = "SELECT count(*) FROM audit.anchors WHERE event_store = 'complaints'"
    assert await client.database.fetchval(anchors) == 1

    hall = await client.register_hall()
    complaint_id = (await client.post_complaint(complaint_body(hall))).json()["id"]
    newest = await client.database.fetchval(
        "SELECT max(notification_id) FROM audit.anchors WHERE event_store = 'complaints'"
    )
    last = await client.database.fetchval(
        "SELECT max(notification_id) FROM complaints.complaints_events WHERE notification_id <= $1", newest
    )
    await client.database.execute("DELETE FROM complaints.complaints_events WHERE notification_id = $1", last)
    await client.database.execute("DELETE FROM complaints.event_hashes WHERE notification_id = $1", last)

    rewritten = await asyncio.to_thread(verify_audit, client, "--no-anchor")
    assert rewritten.returncode == 1, rewritten.stdout
    assert f"the events up to notification {newest}" in rewritten.stdout
    assert complaint_id  # registered after the anchor: its events are not the anchor's concern


async def test_events_stored_before_the_chain_join_it_when_it_is_installed(client: StackClient) -> None:
    await client.database.execute("DROP TRIGGER chain_event ON complaints.complaints_events")
    await client.database.execute("TRUNCATE complaints.event_hashes")
    await client.database.execute("DELETE FROM audit.anchors WHERE event_store = 'complaints'")
    hall = await client.register_hall()  # stored unchained
    assert (await client.post_complaint(complaint_body(hall))).status_code == 201

    await client.database.execute("DELETE FROM complaints._yoyo_migration WHERE migration_id LIKE 'audit_chain_%'")
    await migrate_schema(client.stack.database_url, "complaints", [AUDIT_CHAIN])

    counts = await client.database.fetchrow(
        "SELECT (SELECT count(*) FROM complaints.complaints_events) AS events,"
        " (SELECT count(*) FROM complaints.event_hashes) AS hashes"
    )
    assert counts is not None and counts["events"] == counts["hashes"] > 0
    whole = await asyncio.to_thread(verify_audit, client, "--no-anchor")
    assert whole.returncode == 0, whole.stdout
