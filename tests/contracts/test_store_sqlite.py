"""The store contract on the embedded store: SQLite files beside --db, commands handled in the calling process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventstore.config import Settings
from projections.cli import app
from projections.sqlite.backend import EmbeddedBackend
from projections.sqlite.store import EmbeddedStore
from projections.store import Store

from .. import factories as f
from .store import StoreTestCase

PUBLISHER = "infra-optim:tests"


class TestEmbeddedStore(StoreTestCase):
    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        self.db = tmp_path / "w.db"

    def create_store(self) -> Store:
        return EmbeddedStore(Settings(db=self.db, publisher_id=PUBLISHER))

    def cli(self, *args: str) -> str:
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("WATCHER_ES_")}
        result = CliRunner(env={**env, "NO_COLOR": "1", "COLUMNS": "200"}).invoke(app, ["--db", str(self.db), "--publisher-id", PUBLISHER, *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    def park_a_record(self) -> None:
        """An event edited in the file after it was logged, before the consumers read it: both park it."""
        with EmbeddedBackend(Settings(db=self.db, publisher_id=PUBLISHER)) as backend:
            broken = f.register(state="ONGOING", actions=[f.action(state="ONGOING")])
            backend.handler.handle(broken)  # logged, not projected yet
            backend.log.db.conn.execute("DROP TRIGGER events_append_only_update")
            backend.log.db.conn.execute("UPDATE events SET body = X'C301DEADBEEF' WHERE plan_uuid = ?", (broken.plan_uuid,))
            backend.catch_up()

    def test_a_listing_goes_to_the_end_past_a_page(self) -> None:
        """A page of the outbox holds 1000: `notifications` without --follow lists every one, numbered on."""
        store = self.opened(self.create_store())
        plan = f.register(state="PENDING", actions=[f.action() for _ in range(600)])
        store.submit(plan, wait=True, timeout=60)
        store.submit(f.cancel(plan.plan_uuid), wait=True, timeout=60)
        listed = [n for batch in store.notifications(None, 0, follow=False) for n, _ in batch]
        assert listed == list(range(1, 1 + 1 + 600 * 2 + 1))
        assert len(self.cli("notifications", "--json").splitlines()) == len(listed)
        after = [json.loads(line)["message_id"] for line in self.cli("notifications", "--json", "--after", "1200").splitlines()]
        assert len(after) == 2, "--after resumes from a number"
