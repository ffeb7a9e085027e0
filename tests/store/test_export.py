"""Trade CSV export: Console tradebook columns, spreadsheet safety, mode separation, CLI errors."""

from __future__ import annotations

import csv
import os
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from desktop.cli.export import main
from desktop.domain import Instrument, Mode, Side
from desktop.store import DB_FILENAME, Store
from desktop.store.export import COLUMNS, export_trades, safe_cell, weekly_expiry
from tests.store.conftest import make_fill as _fill
from tests.store.conftest import new_session

CONSOLE_HEADER = (
    "symbol,isin,trade_date,exchange,segment,series,trade_type,auction,quantity,price,"
    "trade_id,order_id,order_execution_time,expiry_date"
)
T0 = datetime(2026, 1, 5, 9, 20, 5)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home with LIVE and PAPER trades of AB1234 and a LIVE trade of CD5678."""
    home = tmp_path / "home"
    with Store.open(home) as store:
        live = new_session(store, "AB1234", mode=Mode.LIVE, label='=HYPERLINK("http://x")')
        paper = new_session(store, "AB1234", mode=Mode.PAPER, label="paper test")
        other = new_session(store, "CD5678", mode=Mode.LIVE, label="theirs")
        store.fills.record(_fill(live, mode=Mode.LIVE, side=Side.BUY, price="100.05", at=T0, fill_id="T1"))
        store.fills.record(
            _fill(live, mode=Mode.LIVE, side=Side.SELL, price="90.00", at=T0.replace(hour=10), fill_id="T2")
        )
        store.fills.record(_fill(live, mode=Mode.LIVE, at=datetime(2026, 1, 6, 9, 30), fill_id="T3"))
        store.fills.record(_fill(paper, mode=Mode.PAPER, at=T0, fill_id="P1"))
        store.fills.record(_fill(other, mode=Mode.LIVE, at=T0, fill_id="X1"))
        nifty = Instrument(1, 2, "NIFTY26JAN25000CE", "NIFTY", "NFO", "NFO-OPT", "CE", date(2026, 1, 27))
        store.instruments.save(broker_id="AB1234", day=date(2026, 1, 6), instruments=[nifty])
        store.fills.record(
            _fill(
                live, mode=Mode.LIVE, at=datetime(2026, 1, 6, 9, 40), symbol="NIFTY26JAN25000CE", fill_id="T4"
            )
        )
    return home


def test_export_writes_console_columns_then_ours(home, tmp_path):
    out = tmp_path / "trades.csv"
    with Store.open(home) as store:
        rows = export_trades(
            store, broker_id="AB1234", out=out, date_from=date(2026, 1, 5), date_to=date(2026, 1, 5)
        )
    assert rows == 2
    raw = out.read_bytes()
    assert raw.startswith(
        CONSOLE_HEADER.encode("ascii") + b",broker_id,session_label,mode,order_tag,round_trip_pnl\r\n"
    )
    buy, sell = _read(out)
    assert list(buy) == list(COLUMNS)
    assert buy["symbol"] == "NIFTY2611325000CE" and buy["exchange"] == "NSE" and buy["segment"] == "FO"
    assert (buy["trade_type"], buy["quantity"], buy["price"]) == ("buy", "65.000000", "100.050000")
    assert buy["trade_date"] == "2026-01-05" and buy["order_execution_time"] == "2026-01-05T09:20:05"
    assert buy["trade_id"] == "T1" and buy["expiry_date"] == "2026-01-13" and buy["mode"] == "LIVE"
    assert buy["round_trip_pnl"] == "" and sell["round_trip_pnl"] == str(
        (Decimal("90.00") - Decimal("100.05")) * 65
    )
    assert sell["round_trip_pnl"] == "-653.25"  # a negative number stays a number
    assert buy["order_tag"].startswith("KD") and buy["broker_id"] == "AB1234"


def test_session_label_cannot_run_as_a_formula(home, tmp_path):
    out = tmp_path / "t.csv"
    with Store.open(home) as store:
        export_trades(store, broker_id="AB1234", out=out)
    assert {r["session_label"] for r in _read(out)} == {'\'=HYPERLINK("http://x")'}


@pytest.mark.parametrize("cell", ["=1+2", "+cmd", "-2+3", "@SUM(A1)", "\tx", "-"])
def test_would_be_formulas_are_made_inert(cell):
    assert safe_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-12.50", "12", "NIFTY", ""])
def test_plain_values_are_left_alone(cell):
    assert safe_cell(cell) == cell


def test_export_defaults_to_live_and_never_mixes_paper(home, tmp_path):
    live, paper = tmp_path / "live.csv", tmp_path / "paper.csv"
    with Store.open(home) as store:
        export_trades(store, broker_id="AB1234", out=live)
        export_trades(store, broker_id="AB1234", out=paper, mode=Mode.PAPER)
    assert {r["trade_id"] for r in _read(live)} == {"T1", "T2", "T3", "T4"}
    assert {r["trade_id"] for r in _read(paper)} == {"P1"}
    assert {r["mode"] for r in _read(paper)} == {"PAPER"}


def test_expiry_comes_from_the_cached_instruments_for_monthly_symbols(home, tmp_path):
    out = tmp_path / "t.csv"
    with Store.open(home) as store:
        export_trades(store, broker_id="AB1234", out=out, date_from=date(2026, 1, 6))
    assert {r["trade_id"]: r["expiry_date"] for r in _read(out)} == {"T3": "2026-01-13", "T4": "2026-01-27"}


def test_weekly_symbol_expiry_is_read_from_the_symbol():
    assert weekly_expiry("NIFTY2611325000CE") == date(2026, 1, 13)
    assert weekly_expiry("SENSEX26D1077100PE") == date(2026, 12, 10)
    assert weekly_expiry("NIFTY26JAN25000CE") is None


def test_bom_is_written_only_when_asked(home, tmp_path):
    out = tmp_path / "t.csv"
    with Store.open(home) as store:
        export_trades(store, broker_id="AB1234", out=out, bom=True)
    assert out.read_bytes().startswith(b"\xef\xbb\xbfsymbol,")


def test_cli_exports_one_account_and_session_label(home, tmp_path, capsys):
    out = tmp_path / "cli.csv"
    code = main(["--broker", "CD5678", "--session-label", "theirs", "--out", str(out), "--home", str(home)])
    assert code == 0
    assert [r["trade_id"] for r in _read(out)] == ["X1"]
    assert "wrote 1 LIVE trade(s)" in capsys.readouterr().out


def test_cli_reports_an_unknown_account(home, tmp_path, capsys):
    code = main(["--broker", "ZZ0000", "--out", str(tmp_path / "x.csv"), "--home", str(home)])
    assert code == 1
    assert "no account 'ZZ0000'" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "05-01-2026"], "not a date: use YYYY-MM-DD"),
        (["--to", "2026-02-30"], "not a date"),
        (["--from", "2026-01-06", "--to", "2026-01-05"], "is after --to"),
        (["--mode", "REAL"], "use PAPER or LIVE"),
    ],
)
def test_cli_rejects_bad_arguments_plainly(home, tmp_path, capsys, args, message):
    code = main(["--broker", "AB1234", "--out", str(tmp_path / "x.csv"), "--home", str(home), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_reports_an_unwritable_path(home, tmp_path, capsys):
    code = main(["--broker", "AB1234", "--out", str(tmp_path / "missing" / "x.csv"), "--home", str(home)])
    assert code == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_cli_reports_a_read_only_folder(home, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    code = main(["--broker", "AB1234", "--out", str(folder / "x.csv"), "--home", str(home)])
    assert code == 1 and "cannot write" in capsys.readouterr().err


def test_cli_reports_an_out_path_that_is_a_folder(home, tmp_path, capsys):
    code = main(["--broker", "AB1234", "--out", str(tmp_path), "--home", str(home)])
    assert code == 1 and "is a folder" in capsys.readouterr().err


def test_cli_does_not_create_a_database_in_an_empty_home(tmp_path, capsys):
    code = main(["--broker", "AB1234", "--out", str(tmp_path / "x.csv"), "--home", str(tmp_path / "empty")])
    assert code == 1 and "no KiteDesk database" in capsys.readouterr().err
    assert not (tmp_path / "empty" / DB_FILENAME).exists()


def test_cli_reports_an_unknown_session_label(home, tmp_path, capsys):
    code = main(
        [
            "--broker",
            "AB1234",
            "--session-label",
            "nope",
            "--out",
            str(tmp_path / "x.csv"),
            "--home",
            str(home),
        ]
    )
    assert code == 1 and "no session labelled 'nope'" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc, where no file can be created")
def test_cli_reports_a_folder_where_no_file_can_be_created(home, capsys):
    code = main(["--broker", "AB1234", "--out", "/proc/kitedesk-trades.csv", "--home", str(home)])
    err = capsys.readouterr().err
    assert code == 1 and "cannot write /proc/kitedesk-trades.csv" in err and "Traceback" not in err


def test_kitedesk_command_routes_export_here(home, tmp_path):
    from desktop.cli.main import main as kitedesk

    out = tmp_path / "app.csv"
    assert (
        kitedesk(["export", "--broker", "AB1234", "--mode", "paper", "--out", str(out), "--home", str(home)])
        == 0
    )
    assert [r["trade_id"] for r in _read(out)] == ["P1"]


# -- never overwrite what export did not write (issue 16 §8) ---------------------------------------------


@pytest.mark.parametrize(
    "name", [DB_FILENAME, "kitedesk.lock", "profiles.toml", "logs/x/a.log", "logs/x/a.csv", "settings.ini"]
)
def test_cli_refuses_to_write_over_the_homes_data_even_when_forced(home, capsys, name):
    target = home / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.write_bytes(b"kept\n")
    before = target.read_bytes()
    for extra in ([], ["--force"]):
        code = main(["--broker", "AB1234", "--out", str(target), "--home", str(home), *extra])
        err = capsys.readouterr().err
        assert code == 1 and "KiteDesk's own data" in err and "Traceback" not in err, err
    assert target.read_bytes() == before
    with Store.open(home) as store:  # the database is still whole
        assert store.profiles.is_known(broker_id="AB1234")


def test_cli_refuses_a_link_that_points_at_the_database(home, tmp_path, capsys):
    link = tmp_path / "innocent.csv"
    link.symlink_to(home / DB_FILENAME)
    before = (home / DB_FILENAME).read_bytes()
    code = main(["--broker", "AB1234", "--out", str(link), "--home", str(home), "--force"])
    assert code == 1 and "KiteDesk's own data" in capsys.readouterr().err
    assert (home / DB_FILENAME).read_bytes() == before and link.is_symlink()


def test_cli_keeps_a_file_it_did_not_write_unless_forced(home, tmp_path, capsys):
    notes = tmp_path / "notes.csv"
    notes.write_text("my,own\nspreadsheet,1\n")
    code = main(["--broker", "AB1234", "--out", str(notes), "--home", str(home)])
    err = capsys.readouterr().err
    assert code == 1 and "--force" in err and "not a KiteDesk export" in err
    assert notes.read_text() == "my,own\nspreadsheet,1\n"
    assert main(["--broker", "AB1234", "--out", str(notes), "--home", str(home), "--force"]) == 0
    assert _read(notes)[0]["trade_id"] == "T1"


@pytest.mark.parametrize("bom", [False, True])
def test_cli_replaces_its_own_earlier_export_without_force(home, tmp_path, bom):
    out = tmp_path / "trades.csv"
    first = ["--broker", "AB1234", "--out", str(out), "--home", str(home)] + (["--bom"] if bom else [])
    assert main(first) == 0
    assert main(["--broker", "AB1234", "--mode", "PAPER", "--out", str(out), "--home", str(home)]) == 0
    assert [r["trade_id"] for r in _read(out)] == ["P1"]


def test_cli_may_write_a_csv_beside_the_homes_data(home, capsys):
    assert main(["--broker", "AB1234", "--out", str(home / "trades.csv"), "--home", str(home)]) == 0
    assert _read(home / "trades.csv")[0]["trade_id"] == "T1"
