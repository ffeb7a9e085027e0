"""No read returns another account's rows, and none can be made without naming the account."""

from __future__ import annotations

import inspect
import uuid
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from desktop.domain import Mode, OrderStatus, Position, Segment, SessionKey
from desktop.store import AccountRequiredError, Store
from tests.store.conftest import DAY, make_fill, make_intent, make_order, new_session

# Methods that take a record carrying its SessionKey: they write that account's rows only.
KEYED_RECORD_TYPES = {
    "SessionKey", "OrderIntent", "Order", "Fill", "Position",
    "Sequence[tuple[OrderIntent, datetime]]",  # intents.record_all: each intent carries its key, checked one by one
}  # fmt: skip
# Public methods named with these verbs write; every other method is a read.
WRITE_VERBS = ("save", "prune", "acknowledge", "record", "upsert", "append", "set_")
# Reads that return no trading rows, with the reason they need no account.
ACCOUNT_FREE = {"profiles.list_broker_ids": "lists account ids for the login picker, no trading rows"}


def _repositories(store: Store) -> dict[str, Any]:
    return {
        name: v
        for name, v in vars(store).items()
        if not name.startswith("_") and type(v).__module__.startswith("desktop.store.")
    }


def _public_methods(repo: Any) -> list[tuple[str, Any]]:
    return [(n, m) for n, m in inspect.getmembers(repo, inspect.ismethod) if not n.startswith("_")]


def _sample_args(store: Store, key: SessionKey) -> dict[str, Any]:
    return {
        "session_id": key.session_id,
        "mode": Mode.PAPER,
        "day": DAY.date(),
        "before": DAY.date() + timedelta(days=1),
        "up_to_seq": 0,
        "instruments": [],
    }


def _fill_account(store: Store, broker_id: str) -> SessionKey:
    key = new_session(store, broker_id)
    intent = make_intent(key)
    store.intents.record(intent, at=DAY)
    store.orders.record(make_order(key, intent, status=OrderStatus.OPEN))
    store.fills.record(make_fill(key, at=DAY))
    store.positions.upsert(Position(key, Mode.PAPER, "NFO", "X", 65, Decimal(1)))
    store.journal.append(key, segment=Segment.NIFTY, kind="bar", payload={}, market_time=DAY)
    store.profiles.save(broker_id=broker_id, user_name="A")
    store.instruments.save(broker_id=broker_id, day=DAY.date(), instruments=[])
    return key


def test_every_repository_method_names_its_account(store):
    key = _fill_account(store, "AB1234")
    samples = _sample_args(store, key)
    repos = _repositories(store)
    assert {"fills", "journal", "trades", "sessions", "instruments", "outbox"} <= set(repos)
    checked = 0
    for repo_name, repo in repos.items():
        for name, method in _public_methods(repo):
            where = f"{repo_name}.{name}"
            params = inspect.signature(method).parameters
            if where in ACCOUNT_FREE:
                continue
            if "broker_id" not in params:
                first = next(iter(params.values()), None)
                assert first is not None and str(first.annotation) in KEYED_RECORD_TYPES, (
                    f"{where} neither takes broker_id nor a record carrying its SessionKey"
                )
                continue
            for pname in ("broker_id", "session_id"):
                if pname in params:
                    p = params[pname]
                    assert p.kind is p.KEYWORD_ONLY and p.default is p.empty, (
                        f"{where}: {pname} must be required keyword"
                    )
            kwargs = {}
            for pname, p in params.items():
                if pname != "broker_id" and p.default is p.empty:
                    assert pname in samples, f"{where}: add a sample value for {pname!r} to this test"
                    kwargs[pname] = samples[pname]
            for missing in (None, ""):
                try:
                    method(broker_id=missing, **kwargs)
                except AccountRequiredError:
                    pass
                else:
                    raise AssertionError(f"{where} accepted broker_id={missing!r}")
            if name.startswith(WRITE_VERBS):
                continue
            # Another account, even with the first account's session id, sees nothing.
            assert not method(broker_id="ZZ9999", **kwargs), f"{where} returned rows of another account"
            checked += 1
    assert checked >= 16, checked


ACCOUNTS = ("AB1234", "CD5678", "EF9012")
SYMBOLS = ("NIFTY2611325000CE", "NIFTY2611325000PE")
operation = st.tuples(
    st.integers(0, len(ACCOUNTS) - 1),
    st.integers(0, 1),  # session 0 is PAPER, session 1 LIVE
    st.sampled_from(["fill", "journal", "intent", "position"]),
    st.integers(0, 3),  # trade day offset
    st.sampled_from(SYMBOLS),
    st.integers(-3, 3),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, max_size=30))
def test_interleaved_writes_of_many_accounts_read_back_exactly_their_own(store, ops):
    run = uuid.uuid4().hex[:6]  # fresh accounts per example; earlier examples' rows stay as "others"
    accounts = [f"{a}{run}" for a in ACCOUNTS]
    # Every account uses the SAME session ids: a session id alone must never select rows.
    keys = {
        (a, s): new_session(store, a, mode=(Mode.PAPER, Mode.LIVE)[s], session_id=f"s{s}{run}", label=f"L{s}")
        for a in accounts
        for s in (0, 1)
    }
    fills, journal, intents = defaultdict(set), defaultdict(list), defaultdict(list)
    positions: dict[tuple, dict[str, int]] = defaultdict(dict)
    by_day: dict[tuple[str, Mode], dict[date, set[str]]] = defaultdict(lambda: defaultdict(set))
    writes = defaultdict(int)
    for n, (a, s, kind, day_offset, symbol, qty) in enumerate(ops):
        account, key = accounts[a], keys[(accounts[a], s)]
        mode = (Mode.PAPER, Mode.LIVE)[s]
        at = DAY + timedelta(days=day_offset, minutes=n)
        if kind == "fill":
            f = make_fill(key, mode=mode, at=at, symbol=symbol, fill_id=f"F{n}")
            store.fills.record(f)
            fills[key].add(f.fill_id)
            by_day[(account, mode)][at.date()].add(f.fill_id)
        elif kind == "journal":
            store.journal.append(key, segment=Segment.NIFTY, kind="tick", payload={"n": n}, market_time=at)
            journal[key].append(n)
        elif kind == "intent":
            intent = make_intent(key, mode=mode)
            store.intents.record(intent, at=at)
            intents[key].append(intent.intent_id)
        else:
            store.positions.upsert(Position(key, mode, "NFO", symbol, qty, Decimal("100")))
            positions[key][symbol] = qty
        writes[account] += 1

    for (account, _), key in keys.items():
        sid = key.session_id
        assert {f.fill_id for f in store.fills.for_session(broker_id=account, session_id=sid)} == fills[key]
        assert {t.fill.fill_id for t in store.trades.for_session(broker_id=account, session_id=sid)} == fills[
            key
        ]
        got = [e.payload["n"] for e in store.journal.for_session(broker_id=account, session_id=sid)]
        assert got == journal[key]
        assert sorted(
            i.intent_id for i in store.intents.unfilled(broker_id=account, session_id=sid)
        ) == sorted(intents[key])
        got_pos = {
            p.tradingsymbol: p.quantity
            for p in store.positions.for_session(broker_id=account, session_id=sid)
        }
        assert got_pos == positions[key]
        open_pos = store.positions.open_positions(broker_id=account, session_id=sid)
        assert {p.tradingsymbol for p in open_pos} == {s for s, q in positions[key].items() if q}
    for account in accounts:
        for mode in Mode:
            days = by_day[(account, mode)]
            everything = store.trades.for_account(broker_id=account, mode=mode)
            assert {t.fill.fill_id for t in everything} == set().union(*days.values())
            assert all(t.fill.key.broker_id == account and t.fill.mode is mode for t in everything)
            for day, expected in days.items():
                one_day = store.trades.for_account(broker_id=account, mode=mode, date_from=day, date_to=day)
                assert {t.fill.fill_id for t in one_day} == expected
        pending = store.outbox.pending(broker_id=account, limit=10_000)
        assert len(pending) == writes[account] + 2  # plus its two sessions
        assert all(e.broker_id == account for e in pending)
