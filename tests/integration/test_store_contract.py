"""The Store contract, run identically on SQLite and on PostgreSQL.

Every contract test goes through `open_store(data_dir, database_url)` and `Ledger`, as the
audit service does, once on a fresh SQLite data dir and once on a fresh PostgreSQL database
owned by a fresh role. The PostgreSQL-only tests at the end check the defence in depth the
handbook asks for: the service role holds SELECT and INSERT only, the owner is another role,
and triggers refuse UPDATE, DELETE and TRUNCATE even to the owner and a superuser.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.audit import merkle
from services.audit.checkpoint import Signer
from services.audit.ledger import Ledger
from services.audit.store import APP_PASSWORD_ENV, APP_ROLE_ENV, Query, Store, open_store
from services.audit.verify import verify
from shared.events import parse_event, utcnow
from shared.events.record import AuditRecord, accepted
from tests.events import PATIENT, PROCEDURE_ID, example_payload, make_event
from tests.integration.pg import FreshDatabase, fresh_database

pytestmark = pytest.mark.integration

PROCEDURE = PROCEDURE_ID
OTHER_PROCEDURE = "1b7e4c2d-3f5a-4b6c-8d7e-9f0a1b2c3d4e"
TABLES = ("entries", "tree_nodes", "checkpoints", "procedure_patients", "entry_lots")


def record(
    event_type: str = "sedation.drug_administered",
    payload: dict[str, Any] | None = None,
    **fields: Any,
) -> AuditRecord:
    """An accepted record stamped by harvest; `fields` replace or add envelope keys."""
    raw = make_event(event_type, payload, **{"procedure_id": PROCEDURE, **fields})
    return accepted(parse_event(raw), "harvest", utcnow())


def copies(template: AuditRecord, n: int) -> list[AuditRecord]:
    """n records like `template`, each with an event_id of its own (fast, for big ledgers)."""
    return [
        template.model_copy(update={"event": {**template.event, "event_id": str(uuid.uuid4())}})
        for _ in range(n)
    ]


# --- where a store lives ---------------------------------------------------------------------


@dataclass
class Location:
    kind: str
    data_dir: Path
    database_url: str | None
    pg: FreshDatabase | None = None

    def open(self, *, readonly: bool = False) -> Store:
        return open_store(self.data_dir, self.database_url, readonly=readonly)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "audit" / "ledger.sqlite3"

    @contextmanager
    def service_connection(self) -> Iterator[tuple[Callable[[str], object], type[Exception]]]:
        """Run statements as the service could, and the error the store must answer with.

        SQLite: a plain sqlite3 connection to the ledger file (SQLite has no roles, the
        triggers refuse). PostgreSQL: logged in as the app role the store itself uses
        (privileges refuse, and the triggers behind them).
        """
        if self.pg is None:
            lite = sqlite3.connect(self.sqlite_path, isolation_level=None)
            try:
                yield lite.execute, sqlite3.IntegrityError
            finally:
                lite.close()
        else:
            with self.pg.connect(self.pg.app_role) as conn:
                conn.execute("SET search_path = audit")
                yield conn.execute, psycopg.errors.InsufficientPrivilege

    def bump_schema_version(self) -> None:
        """What a newer release's migration would leave behind."""
        if self.pg is None:
            with sqlite3.connect(self.sqlite_path) as lite:
                lite.execute("PRAGMA user_version = 3")
            lite.close()
        else:
            with self.pg.connect() as conn:
                conn.execute("INSERT INTO audit.meta (schema_version) VALUES (3)")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Location]:
    """A fresh store location: a tmp data dir, or a fresh database owned by a fresh role."""
    if request.param == "sqlite":
        yield Location("sqlite", tmp_path / "var", None)
        return
    with fresh_database() as db:
        yield Location("postgres", tmp_path / "var", db.url, db)


@pytest.fixture
def opened(store_url: Location) -> Iterator[Callable[..., Store]]:
    """`opened(readonly=False)`: a store at the location, closed after the test."""
    stores: list[Store] = []

    def open_(*, readonly: bool = False) -> Store:
        store = store_url.open(readonly=readonly)
        stores.append(store)
        return store

    yield open_
    for store in reversed(stores):
        store.close()


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer.load_or_create(tmp_path / "k.pem", "proctrail/audit")


@pytest.fixture
def store(opened: Callable[..., Store]) -> Store:
    return opened()


@pytest.fixture
def ledger(store: Store, signer: Signer) -> Ledger:
    return Ledger(store, signer)


def all_entries(store: Store, **filters: str) -> list[int]:
    return [e.seq for e in store.entries(Query(filters, limit=1000))]


# --- the contract, on both stores ------------------------------------------------------------


def test_sequence_numbers_are_dense_from_zero_across_batches(ledger: Ledger, store: Store) -> None:
    assert store.size() == 0
    assert ledger.append([record(), record(), record()]) == [0, 1, 2]
    assert ledger.append([record(), record()]) == [3, 4]

    assert store.size() == 5
    assert all_entries(store) == [0, 1, 2, 3, 4]
    for entry in store.entries(Query({})):
        assert type(entry.leaf) is bytes
        assert type(entry.leaf_hash) is bytes
        assert entry.leaf_hash == hashlib.sha256(b"\x00" + entry.leaf).digest()
        assert entry.content()["seq"] == entry.seq


def test_an_event_id_is_appended_once_within_a_batch_and_across_batches(
    ledger: Ledger, store: Store
) -> None:
    first, second = record(), record()

    assert ledger.append([first, first]) == [0, None]
    assert ledger.append([first, second, second]) == [None, 1, None]
    assert ledger.append([second]) == [None]

    assert store.known([first.event_id, second.event_id, str(uuid.uuid4())]) == {
        first.event_id,
        second.event_id,
    }
    assert store.known([]) == set()
    assert [e.content()["event"]["event_id"] for e in store.entries(Query({}))] == [
        first.event_id,
        second.event_id,
    ]
    assert store.size() == 2
    assert [c.tree_size for c in store.checkpoints()] == [1, 2]  # no checkpoint for no entry


def test_the_patient_filter_follows_procedure_scheduled(ledger: Ledger, store: Store) -> None:
    before = record(procedure_id=OTHER_PROCEDURE)  # nothing links this procedure yet
    scheduled = record("procedure.scheduled")
    same_batch = record()
    ledger.append([before, scheduled, same_batch])
    later = record("sedation.depth_scored")
    elsewhere = record(procedure_id=OTHER_PROCEDURE)
    ledger.append([later, elsewhere])
    rescheduled = record(
        "procedure.scheduled", example_payload("procedure.scheduled") | {"patient": {"id": "MRN-9"}}
    )
    ledger.append([rescheduled])  # the first link stays
    ledger.append([record()])

    assert store.patients([PROCEDURE, OTHER_PROCEDURE, PROCEDURE]) == {PROCEDURE: "MRN-0042"}
    assert store.patients([]) == {}
    assert all_entries(store, patient_id="MRN-0042") == [1, 2, 3, 6]
    assert all_entries(store, patient_id="MRN-9") == [5]
    assert all_entries(store, procedure_id=OTHER_PROCEDURE) == [0, 4]
    assert all_entries(store, procedure_id=PROCEDURE, type="sedation.drug_administered") == [
        2,
        6,
    ]
    assert all_entries(store, actor_id="rn-lee") == list(range(7))
    assert all_entries(store, actor_id="dr-nobody") == []


LOT_RELEASED = {
    "lot_id": "LOT-7",
    "sample_id": "S-1",
    "patient": PATIENT,
    "cell_type": "bone marrow MSC",
    "cell_count": 5e7,
    "viability_pct": 92,
    "sterility": "no growth at 14 days",
    "endotoxin": "<0.5 EU/mL",
    "mycoplasma": "negative",
    "released_by": "qp-ward",
    "expires_at": "2026-12-31T00:00:00+00:00",
}


def lot_story() -> list[AuditRecord]:
    """A lot released, injected under one procedure, named by an adverse event under another."""
    released = record("product.lot_released", LOT_RELEASED, procedure_id=None)
    other_lot = record("product.lot_released", {**LOT_RELEASED, "lot_id": "LOT-8"},
                       procedure_id=None)  # fmt: skip
    injected = record("implant.injected", {
        "target": {"kind": "disc", "level": "L4-L5"}, "lot_id": "LOT-7", "volume_ml": 1.5,
        "cell_count": 1e7})  # fmt: skip
    adverse = record("adverse_event.reported", {
        "term": "fever", "grade": 1, "serious": False, "serious_criteria": [],
        "expected": True, "onset_at": "2026-11-22T08:00:00+00:00", "suspected_cause": "product",
        "action_taken": "paracetamol", "outcome": "recovered", "related_lot_id": "LOT-7",
    }, procedure_id=OTHER_PROCEDURE)  # fmt: skip
    return [released, other_lot, record(), injected, adverse]


def test_the_lot_filter_finds_every_entry_naming_the_lot(ledger: Ledger, store: Store) -> None:
    ledger.append(lot_story()[:3])
    ledger.append(lot_story()[3:])

    assert all_entries(store, lot_id="LOT-7") == [0, 3, 4]
    assert all_entries(store, lot_id="LOT-8") == [1]
    assert all_entries(store, lot_id="LOT-7", procedure_id=OTHER_PROCEDURE) == [4]
    assert all_entries(store, lot_id="LOT-9") == []


def test_a_schema_1_ledger_gets_its_lots_indexed_when_it_migrates(
    store_url: Location, ledger: Ledger, store: Store, signer: Signer
) -> None:
    ledger.append(lot_story())
    store.close()
    if store_url.pg is None:  # back to what schema 1 left: no entry_lots
        with sqlite3.connect(store_url.sqlite_path) as lite:
            lite.execute("DROP TABLE entry_lots")
            lite.execute("PRAGMA user_version = 1")
        lite.close()
    else:
        with store_url.pg.admin() as conn:
            conn.execute("DROP TABLE audit.entry_lots")
            conn.execute("ALTER TABLE audit.meta DISABLE TRIGGER ALL")
            conn.execute("DELETE FROM audit.meta")
            conn.execute("INSERT INTO audit.meta (schema_version) VALUES (1)")
            conn.execute("ALTER TABLE audit.meta ENABLE TRIGGER ALL")

    migrated = store_url.open()
    try:
        assert all_entries(migrated, lot_id="LOT-7") == [0, 3, 4]
        Ledger(migrated, signer).append([record("implant.injected", {
            "target": {"kind": "disc", "level": "L5-S1"}, "lot_id": "LOT-8", "volume_ml": 1,
            "cell_count": 1e7})])  # fmt: skip
        assert all_entries(migrated, lot_id="LOT-8") == [1, 5]
        assert verify(migrated, signer.verifier).intact
    finally:
        migrated.close()


def test_since_and_until_select_on_recorded_at_in_utc(ledger: Ledger, store: Store) -> None:
    ledger.append(
        [
            record(recorded_at="2025-03-04T09:00:00+01:00"),  # 08:00 UTC
            record(recorded_at="2025-03-04T10:00:00+00:00"),
            record(recorded_at="2025-03-04T10:30:00.250000+00:00"),
            record(recorded_at="2025-03-04T11:00:00+00:00"),
            record(),  # no recorded_at: in no time window
        ]
    )

    def window(since: str | None, until: str | None) -> list[int]:
        return [e.seq for e in store.entries(Query({}, since=since, until=until))]

    assert window("2025-03-04T08:00:00+00:00", "2025-03-04T11:00:00+00:00") == [0, 1, 2]
    assert window("2025-03-04T09:30:00+00:00", "2025-03-04T11:00:00+00:00") == [1, 2]
    assert window("2025-03-04T10:00:00.500000+00:00", None) == [2, 3]
    assert window(None, "2025-03-04T10:00:00+00:00") == [0]
    assert window("2025-03-05T00:00:00+00:00", None) == []
    assert (
        store.entries(Query({}, since="2025-03-04T08:00:00+00:00"))[0]
        .content()["event"]["recorded_at"]
        .startswith("2025-03-04T09:00:00")
    )


def test_pages_follow_after_seq_and_limit(ledger: Ledger, store: Store) -> None:
    for _ in range(3):
        ledger.append([record(), record("sedation.depth_scored"), record()])

    def page(after: int, limit: int, **filters: str) -> list[int]:
        return [e.seq for e in store.entries(Query(filters, after_seq=after, limit=limit))]

    assert page(-1, 4) == [0, 1, 2, 3]
    assert page(3, 4) == [4, 5, 6, 7]
    assert page(7, 4) == [8]
    assert page(8, 4) == []
    drugs = {"type": "sedation.drug_administered"}
    assert page(-1, 2, **drugs) == [0, 2]
    assert page(2, 2, **drugs) == [3, 5]
    assert page(5, 5, **drugs) == [6, 8]


def test_by_event_id_finds_one_entry(ledger: Ledger, store: Store) -> None:
    first, second = record(), record()
    ledger.append([first, second])

    found = store.by_event_id(second.event_id)
    assert found is not None
    assert found.seq == 1
    assert type(found.leaf) is bytes
    assert found.content()["event"]["event_id"] == second.event_id
    assert found == store.entries(Query({}, after_seq=0, limit=1))[0]
    assert store.by_event_id(str(uuid.uuid4())) is None


def test_every_batch_stores_its_signed_checkpoint(
    ledger: Ledger, store: Store, signer: Signer
) -> None:
    ledger.append([record(), record()])
    ledger.append([record()])
    ledger.append([record(), record(), record()])

    stored = list(store.checkpoints())
    assert [c.tree_size for c in stored] == [2, 3, 6]
    for cp in stored:
        opened = signer.verifier.open(cp.note)
        assert (opened.size, opened.root) == (cp.tree_size, cp.root)
        assert cp.root == merkle.root(cp.tree_size, store.node)
        assert type(cp.root) is bytes
        assert store.checkpoint(cp.tree_size) == cp
    latest = store.latest_checkpoint()
    assert latest == stored[-1]
    assert latest.root == merkle.root(store.size(), store.node) == ledger.frontier.root()
    assert store.checkpoint(4) is None
    with pytest.raises(LookupError):
        store.node(0, 6)
    with pytest.raises(LookupError):
        store.node(1, 3)


def test_an_empty_store_has_no_checkpoint(store: Store) -> None:
    assert store.latest_checkpoint() is None
    assert list(store.checkpoints()) == []
    assert list(store.scan()) == []
    assert list(store.scan_nodes(1)) == []


def test_a_reopened_store_and_a_new_ledger_continue_the_same_tree(
    opened: Callable[..., Store], signer: Signer
) -> None:
    first = opened()
    Ledger(first, signer).append([record() for _ in range(5)])
    first.close()

    again = opened()
    ledger = Ledger(again, signer)  # reloads the frontier from the stored nodes
    assert ledger.frontier.size == 5
    assert ledger.append([record(), record(), record()]) == [5, 6, 7]
    root = merkle.root(8, again.node)
    assert root == ledger.frontier.root()
    assert again.latest_checkpoint() is not None
    assert again.latest_checkpoint().root == root  # type: ignore[union-attr]
    rebuilt = merkle.Frontier()
    for _seq, _leaf, digest in again.scan():
        list(rebuilt.append(digest))
    assert rebuilt.root() == root
    third = opened()
    assert Ledger(third, signer).frontier.root() == root
    assert verify(third, signer.verifier).intact


def test_a_readonly_store_sees_the_appends(
    opened: Callable[..., Store], ledger: Ledger, signer: Signer
) -> None:
    reader = opened(readonly=True)
    assert reader.size() == 0
    scheduled = record("procedure.scheduled")
    ledger.append([scheduled, record()])

    assert reader.size() == 2
    assert [e.seq for e in reader.entries(Query({"patient_id": "MRN-0042"}))] == [0, 1]
    assert reader.by_event_id(scheduled.event_id) is not None
    assert reader.latest_checkpoint() == ledger.store.latest_checkpoint()
    assert reader.patients([PROCEDURE]) == {PROCEDURE: "MRN-0042"}
    assert verify(reader, signer.verifier).intact

    ledger.append([record()])
    assert reader.size() == 3
    assert [c.tree_size for c in reader.checkpoints()] == [2, 3]


def test_a_readonly_store_cannot_append(
    opened: Callable[..., Store], ledger: Ledger, signer: Signer
) -> None:
    ledger.append([record()])
    reader = opened(readonly=True)

    with pytest.raises((sqlite3.Error, psycopg.Error)):
        Ledger(reader, signer).append([record()])
    assert ledger.store.size() == 1


def test_a_second_stale_writer_cannot_append(
    opened: Callable[..., Store], ledger: Ledger, signer: Signer
) -> None:
    ledger.append([record()])
    stale = Ledger(opened(), signer)
    ledger.append([record()])

    with pytest.raises((sqlite3.Error, psycopg.Error, RuntimeError)):
        stale.append([record()])  # it would reuse seq 1: the whole batch is refused
    assert ledger.store.size() == 2
    assert ledger.append([record()]) == [2]
    assert verify(ledger.store, signer.verifier).intact


def test_scans_stream_a_big_ledger_in_order(
    opened: Callable[..., Store], ledger: Ledger, signer: Signer
) -> None:
    total = 20_100  # more than two pages of 10,000
    many = copies(record(), total)
    for start in range(0, total, 300):
        ledger.append(many[start : start + 300])
    store = ledger.store
    reader = opened(readonly=True)

    seqs = []
    for seq, leaf, digest in reader.scan():
        assert type(leaf) is bytes
        assert type(digest) is bytes
        seqs.append(seq)
    assert seqs == list(range(total))
    tail = list(reader.scan(start=19_990))
    assert [row[0] for row in tail] == list(range(19_990, total))
    assert tail[3][1] == store.by_event_id(many[19_993].event_id).leaf  # type: ignore[union-attr]

    level1 = list(reader.scan_nodes(1))
    assert [i for i, _ in level1] == list(range(total // 2))
    assert all(type(h) is bytes for _, h in level1)
    assert level1[10_001][1] == store.node(1, 10_001)
    assert [i for i, _ in reader.scan_nodes(14)] == [0]

    rows = reader.scan()  # a scan ends where the ledger was when it began
    assert next(rows)[0] == 0
    ledger.append([record()])
    assert sum(1 for _ in rows) == total - 1
    assert reader.size() == total + 1

    assert verify(reader, signer.verifier).intact


def test_a_newer_schema_is_refused(store_url: Location, opened: Callable[..., Store]) -> None:
    opened().close()
    store_url.bump_schema_version()

    with pytest.raises(RuntimeError, match="schema 3"):
        store_url.open()


@pytest.mark.parametrize("table", TABLES)
def test_the_service_cannot_update_or_delete_the_ledger(
    store_url: Location, ledger: Ledger, signer: Signer, table: str
) -> None:
    injected = lot_story()[3]  # a row in every table, entry_lots too
    ledger.append([record("procedure.scheduled"), record(), injected])
    root = ledger.frontier.root()
    statements = [f"UPDATE {table} SET {column(table)} = {column(table)}", f"DELETE FROM {table}"]
    if store_url.kind == "postgres":
        statements.append(f"TRUNCATE {table}")

    with store_url.service_connection() as (execute, refused):
        for statement in statements:
            with pytest.raises(refused):
                execute(statement)

    assert ledger.store.size() == 3
    assert ledger.store.patients([PROCEDURE]) == {PROCEDURE: "MRN-0042"}
    assert merkle.root(3, ledger.store.node) == root
    assert verify(ledger.store, signer.verifier).intact


def column(table: str) -> str:
    return {
        "entries": "disposition",
        "tree_nodes": "hash",
        "checkpoints": "note",
        "procedure_patients": "patient_id",
        "entry_lots": "lot_id",
    }[table]


# --- PostgreSQL: roles, privileges, triggers, migrations -------------------------------------


@pytest.fixture
def pg() -> Iterator[FreshDatabase]:
    with fresh_database() as db:
        yield db


@contextmanager
def pg_store(db: FreshDatabase, *, readonly: bool = False) -> Iterator[Store]:
    store = open_store(Path("unused"), db.url, readonly=readonly)
    try:
        yield store
    finally:
        store.close()


PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def privileges(db: FreshDatabase, role: str) -> dict[str, set[str]]:
    """table -> the privileges `role` holds on it, directly or through any role."""
    out: dict[str, set[str]] = {}
    with db.admin() as conn:
        for (table,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'audit'"
        ).fetchall():
            held = set()
            for p in PRIVILEGES:
                query = "SELECT has_table_privilege(%s, %s, %s)"
                args: tuple[str, ...] = (role, f"audit.{table}", p)
                if p in ("SELECT", "INSERT", "UPDATE", "REFERENCES"):  # also granted per column
                    query += " OR has_any_column_privilege(%s, %s, %s)"
                    args *= 2
                row = conn.execute(query, args).fetchone()
                assert row is not None
                if row[0]:
                    held.add(p)
            out[table] = held
    return out


def triggers(db: FreshDatabase) -> dict[str, str]:
    """trigger name -> tgenabled ('A': fires always, even in replica mode)."""
    with db.admin() as conn:
        rows = conn.execute(
            "SELECT t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'audit' AND NOT t.tgisinternal"
        ).fetchall()
    return {name: enabled for name, enabled in rows}


EXPECTED_TRIGGERS = {
    f"{table}_{guard}": "A"
    for table in (*TABLES, "meta")
    for guard in ("no_update", "no_delete", "no_truncate")
}


def test_postgres_app_role_holds_select_and_insert_only_and_the_owner_owns_the_tables(
    pg: FreshDatabase, signer: Signer
) -> None:
    with pg_store(pg) as store, pg_store(pg, readonly=True) as reader:
        Ledger(store, signer).append([record("procedure.scheduled")])
        assert reader.size() == 1

        assert privileges(pg, pg.app_role) == {
            **{t: {"SELECT", "INSERT"} for t in TABLES},
            "meta": {"SELECT"},
        }
        with pg.connect() as conn:  # the owner, who granted them
            granted = conn.execute(
                "SELECT table_name, privilege_type FROM information_schema.table_privileges"
                " WHERE grantee = %s AND table_schema = 'audit'",
                (pg.app_role,),
            ).fetchall()
        assert sorted(granted) == sorted(
            [(t, p) for t in TABLES for p in ("INSERT", "SELECT")] + [("meta", "SELECT")]
        )
        with pg.admin() as conn:
            owners = conn.execute(
                "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'audit'"
            ).fetchall()
            schema_owner = conn.execute(
                "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'audit'"
            ).fetchone()
            app = conn.execute(
                "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls"
                " FROM pg_roles WHERE rolname = %s",
                (pg.app_role,),
            ).fetchone()
            sessions = conn.execute(  # every connection the two stores hold
                "SELECT usename FROM pg_stat_activity WHERE datname = %s"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                (pg.name,),
            ).fetchall()
        assert sorted(owners) == sorted((t, pg.owner) for t in (*TABLES, "meta"))
        assert schema_owner == (pg.owner,)
        assert app == (True, False, False, False, False)
        assert sessions
        assert {s[0] for s in sessions} == {pg.app_role}  # the owner's connection is closed
    assert triggers(pg) == EXPECTED_TRIGGERS


def test_postgres_triggers_refuse_even_the_owner_and_a_superuser(
    pg: FreshDatabase, signer: Signer
) -> None:
    with pg_store(pg) as store:
        Ledger(store, signer).append([record("procedure.scheduled"), lot_story()[3]])

    with pg.connect() as owner, pg.admin() as superuser:
        superuser.execute("SET session_replication_role = replica")  # skips ordinary triggers
        for conn in (owner, superuser):
            for table in TABLES:
                for statement in (
                    f"UPDATE audit.{table} SET {column(table)} = {column(table)}",
                    f"DELETE FROM audit.{table}",
                    f"TRUNCATE audit.{table}",
                ):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                        conn.execute(statement)
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute("DELETE FROM audit.meta")

    with pg_store(pg, readonly=True) as reader:
        assert reader.size() == 2
        assert verify(reader, signer.verifier).intact


def test_postgres_migration_is_idempotent_and_repairs_drift(
    pg: FreshDatabase, signer: Signer
) -> None:
    for _ in range(3):
        with pg_store(pg) as store:
            Ledger(store, signer).append([record()])
    with pg.connect() as owner:
        owner.execute(f'GRANT UPDATE, DELETE ON audit.entries TO "{pg.app_role}"')
        owner.execute(f'GRANT UPDATE (note) ON audit.checkpoints TO "{pg.app_role}"')
        owner.execute("ALTER TABLE audit.entries DISABLE TRIGGER entries_no_update")
        owner.execute("ALTER TABLE audit.tree_nodes ENABLE REPLICA TRIGGER tree_nodes_no_delete")
        owner.execute("DROP TRIGGER checkpoints_no_truncate ON audit.checkpoints")
    assert "UPDATE" in privileges(pg, pg.app_role)["checkpoints"]

    with pg_store(pg) as store:
        assert Ledger(store, signer).append([record()]) == [3]

    assert privileges(pg, pg.app_role)["entries"] == {"SELECT", "INSERT"}
    assert privileges(pg, pg.app_role)["checkpoints"] == {"SELECT", "INSERT"}
    assert triggers(pg) == EXPECTED_TRIGGERS
    with pg.admin() as conn:
        assert conn.execute("SELECT schema_version FROM audit.meta").fetchall() == [(2,)]
    with pg_store(pg, readonly=True) as reader:
        assert reader.size() == 4
        assert [c.tree_size for c in reader.checkpoints()] == [1, 2, 3, 4]
        assert verify(reader, signer.verifier).intact


def test_postgres_app_role_and_password_come_from_the_environment(
    pg: FreshDatabase, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = f"{pg.owner}_svc"
    monkeypatch.setenv(APP_ROLE_ENV, role)
    monkeypatch.setenv(APP_PASSWORD_ENV, "correct horse battery staple")

    with pg_store(pg) as store, pg_store(pg, readonly=True) as reader:
        Ledger(store, signer).append([record()])
        assert reader.size() == 1
        with pg.admin() as conn:
            row = conn.execute(
                "SELECT rolcanlogin, rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s",
                (role,),
            ).fetchone()
            default = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (pg.app_role,)
            ).fetchone()
            users = conn.execute(
                "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = %s"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                (pg.name,),
            ).fetchall()
    assert row == (True, True)
    assert default is None
    assert users == [(role,)]
    assert privileges(pg, role)["entries"] == {"SELECT", "INSERT"}


@pytest.mark.parametrize("role", ["owner", "postgres"])
def test_postgres_refuses_an_app_role_that_could_change_the_ledger(
    pg: FreshDatabase, monkeypatch: pytest.MonkeyPatch, role: str
) -> None:
    monkeypatch.setenv(APP_ROLE_ENV, pg.owner if role == "owner" else role)

    with pytest.raises(RuntimeError, match="app role"):
        open_store(Path("unused"), pg.url)


def test_postgres_store_connects_again_after_the_server_drops_it(
    pg: FreshDatabase, signer: Signer
) -> None:
    with pg_store(pg) as store:
        ledger = Ledger(store, signer)
        ledger.append([record()])
        with pg.admin() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
                " AND usename = %s",
                (pg.name, pg.app_role),
            )

        with pytest.raises(psycopg.OperationalError):
            ledger.append([record()])  # the batch in flight fails: the consumer retries it
        assert ledger.append([record()]) == [1]
        assert store.size() == 2
        assert verify(store, signer.verifier).intact
