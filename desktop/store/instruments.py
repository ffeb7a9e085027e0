"""The day's instruments dump, cached per account per trading day (compressed CSV, never synced)."""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from sqlalchemy import delete, select
from sqlalchemy.dialects.sqlite import insert

from desktop.domain import Instrument
from desktop.store.database import Database, utc_now
from desktop.store.errors import StoreError
from desktop.store.ids import derived_id
from desktop.store.records import require_broker_id
from desktop.store.schema import instrument_dumps

_FIELDS = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "exchange",
    "segment",
    "instrument_type",
    "expiry",
    "strike",
    "lot_size",
    "tick_size",
)


class InstrumentDumps:
    """One instruments dump per (account, trading day): fetched once a day, read back at every start."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, *, broker_id: str, day: date, instruments: Iterable[Instrument]) -> int:
        """Stores (or replaces) an account's dump for `day`; returns the number of instruments."""
        require_broker_id(broker_id)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_FIELDS)
        count = 0
        for i in instruments:
            writer.writerow(
                (
                    i.instrument_token,
                    i.exchange_token,
                    i.tradingsymbol,
                    i.name,
                    i.exchange,
                    i.segment,
                    i.instrument_type,
                    "" if i.expiry is None else i.expiry.isoformat(),
                    i.strike,
                    i.lot_size,
                    i.tick_size,
                )
            )
            count += 1
        blob = zlib.compress(buffer.getvalue().encode("utf-8"), 6)
        values = {"row_count": count, "csv_zlib": blob, "fetched_at_utc": utc_now()}
        stmt = insert(instrument_dumps).values(
            id=derived_id("instruments", broker_id, day.isoformat()),
            broker_id=broker_id,
            trading_day=day,
            **values,
        )
        with self._db.write(durable=False, what="instruments dump") as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=[instrument_dumps.c.id], set_=values))
        return count

    def load(self, *, broker_id: str, day: date) -> list[Instrument] | None:
        """An account's dump for `day`, or None if it was not fetched that day."""
        require_broker_id(broker_id)
        with self._db.read() as conn:
            blob = conn.execute(
                select(instrument_dumps.c.csv_zlib).where(
                    instrument_dumps.c.broker_id == broker_id, instrument_dumps.c.trading_day == day
                )
            ).scalar()
        if blob is None:
            return None
        try:
            reader = csv.DictReader(io.StringIO(zlib.decompress(blob).decode("utf-8")))
            return [_instrument(row) for row in reader]
        except (zlib.error, ValueError, KeyError) as exc:
            raise StoreError(
                f"the cached instruments of {day} are unreadable; fetch them again ({exc})"
            ) from exc

    def prune(self, *, broker_id: str, before: date) -> int:
        """Deletes an account's dumps of days before `before`; returns how many went."""
        require_broker_id(broker_id)
        with self._db.write(durable=False, what="instruments cleanup") as conn:
            return conn.execute(
                delete(instrument_dumps).where(
                    instrument_dumps.c.broker_id == broker_id, instrument_dumps.c.trading_day < before
                )
            ).rowcount


def _instrument(row: dict[str, str]) -> Instrument:
    return Instrument(
        instrument_token=int(row["instrument_token"]),
        exchange_token=int(row["exchange_token"]),
        tradingsymbol=row["tradingsymbol"],
        name=row["name"],
        exchange=row["exchange"],
        segment=row["segment"],
        instrument_type=row["instrument_type"],
        expiry=date.fromisoformat(row["expiry"]) if row["expiry"] else None,
        strike=Decimal(row["strike"]),
        lot_size=int(row["lot_size"]),
        tick_size=Decimal(row["tick_size"]),
    )
