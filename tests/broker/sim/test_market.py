"""The simulator's market: reproducible, realistic, and its ticks, quotes and candles agree."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from kiteconnect import KiteConnect, KiteTicker

from desktop.broker.sim.market import Market, SimInstrument
from desktop.broker.sim.pricing import RISK_FREE_RATE, SECONDS_PER_YEAR
from desktop.broker.sim.ticks import encode_frame, ist_epoch

MOCKS = Path("/work/shared/kite-mocks")
DAY = date(2026, 1, 8)  # a Thursday: SENSEX weekly expiry day
NIFTY, BANKNIFTY, SENSEX = 256265, 260105, 265
TICK = Decimal("0.05")


def at(hh: int, mm: int, ss: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hh, mm, ss))


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(seed=21, trading_day=DAY)


@pytest.fixture(scope="module")
def ticker() -> KiteTicker:
    """A real KiteTicker, never connected: only its parser is used."""
    return KiteTicker("api_key", "access_token")


def option(
    market: Market, name: str, right: str, steps_from_atm: int = 0, expiry_rank: int = 0
) -> SimInstrument:
    """An option of the `expiry_rank`-th expiry, `steps_from_atm` strikes above the at-the-money one."""
    chain = [i for i in market.instruments if i.name == name and i.instrument_type == right]
    expiry = sorted({i.expiry for i in chain})[expiry_rank]
    strikes = sorted(i.strike for i in chain if i.expiry == expiry)
    strike = strikes[len(strikes) // 2 + steps_from_atm]
    return next(i for i in chain if i.expiry == expiry and i.strike == strike)


def seconds(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(seconds=k) for k in range(count)]


# ------------------------------------------------------------------ reproducible
def sample_prices(market: Market) -> list[str]:
    tokens = [i.instrument_token for i in market.instruments[::37]]
    return [str(market.last_price(t, at(hh, 7, 13))) for t in tokens for hh in (9, 12, 15)]


def test_same_seed_gives_the_same_market(market: Market) -> None:
    twin = Market(seed=21, trading_day=DAY)
    assert sample_prices(twin) == sample_prices(market)
    assert twin.instruments_csv() == market.instruments_csv()
    token = option(market, "NIFTY", "CE").instrument_token
    assert twin.quote(token, at(11, 0)) == market.quote(token, at(11, 0))


def test_same_seed_gives_the_same_prices_in_another_process(market: Market) -> None:
    code = (
        "import json; from datetime import date, datetime, time; from desktop.broker.sim.market import Market;"
        "m = Market(seed=21, trading_day=date(2026, 1, 8));"
        "tokens = [i.instrument_token for i in m.instruments[::37]];"
        "print(json.dumps([str(m.last_price(t, datetime.combine(m.trading_day, time(hh, 7, 13))))"
        " for t in tokens for hh in (9, 12, 15)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == sample_prices(market)


def test_different_seeds_give_different_prices(market: Market) -> None:
    other = Market(seed=22, trading_day=DAY)
    assert [other.last_price(NIFTY, at(10, m)) for m in range(10)] != [
        market.last_price(NIFTY, at(10, m)) for m in range(10)
    ]


def test_trading_day_on_a_weekend_is_refused() -> None:
    with pytest.raises(ValueError, match="weekday"):
        Market(seed=1, trading_day=date(2026, 1, 10))


# ------------------------------------------------------------------ realistic
def test_index_levels_are_near_their_2026_levels(market: Market) -> None:
    assert 20_000 < market.last_price(NIFTY, at(12, 0)) < 32_000
    assert 48_000 < market.last_price(BANKNIFTY, at(12, 0)) < 70_000
    assert 70_000 < market.last_price(SENSEX, at(12, 0)) < 100_000


def test_index_moves_about_once_a_second(market: Market) -> None:
    prices = [market.last_price(NIFTY, t) for t in seconds(at(11, 0), 120)]
    changes = sum(a != b for a, b in zip(prices, prices[1:], strict=False))
    assert changes > 100


def test_option_prices_sit_on_the_tick_and_never_below_it(market: Market) -> None:
    t = at(14, 45, 10)
    for inst in market.instruments:
        if inst.is_option:
            price = market.last_price(inst.instrument_token, t)
            assert isinstance(price, Decimal)
            assert price >= TICK and price % TICK == 0


def test_before_the_open_the_price_is_the_open_and_after_the_close_the_close(market: Market) -> None:
    for token in (NIFTY, option(market, "BANKNIFTY", "PE").instrument_token):
        (day_candle,) = market.candles(token, "day", at(0, 0), at(15, 30))
        assert (
            float(market.last_price(token, at(7, 0)))
            == day_candle[1]
            == float(market.last_price(token, at(9, 15)))
        )
        assert (
            float(market.last_price(token, at(18, 0)))
            == day_candle[4]
            == float(market.last_price(token, at(15, 30)))
        )
        saturday = datetime(2026, 1, 10, 11, 0)
        (friday,) = market.candles(token, "day", datetime(2026, 1, 9), datetime(2026, 1, 9, 15, 30))
        assert float(market.last_price(token, saturday)) == friday[4]


# ------------------------------------------------------------------ options behave like options
def test_within_a_minute_calls_rise_and_puts_fall_with_the_index(market: Market) -> None:
    call, put = option(market, "NIFTY", "CE"), option(market, "NIFTY", "PE")
    rows = [
        (
            market.last_price(NIFTY, t),
            market.last_price(call.instrument_token, t),
            market.last_price(put.instrument_token, t),
        )
        for t in seconds(at(10, 30), 60)
    ]
    rows.sort()
    assert [c for _, c, _ in rows] == sorted(c for _, c, _ in rows)
    assert [p for _, _, p in rows] == sorted((p for _, _, p in rows), reverse=True)
    assert rows[-1][1] > rows[0][1]  # the index moved enough within the minute to move the ATM call


def test_over_the_day_premiums_follow_the_index(market: Market) -> None:
    call, put = option(market, "NIFTY", "CE"), option(market, "NIFTY", "PE")
    index = market.candles(NIFTY, "minute", at(9, 15), at(15, 30))
    calls = market.candles(call.instrument_token, "minute", at(9, 15), at(15, 30))
    puts = market.candles(put.instrument_token, "minute", at(9, 15), at(15, 30))
    checked = 0
    for k in range(1, len(index)):
        move = index[k][4] - index[k - 1][4]
        if abs(move) > 8:  # a clear move: delta beats a minute of time decay
            checked += 1
            assert math.copysign(1, calls[k][4] - calls[k - 1][4]) == math.copysign(1, move)
            assert math.copysign(1, puts[k][4] - puts[k - 1][4]) == -math.copysign(1, move)
    assert checked > 20


def test_put_call_parity_holds_roughly(market: Market) -> None:
    t = at(13, 20, 30)
    minute_start = at(13, 20)
    spot = float(market.last_price(NIFTY, t))
    for steps in (-10, -3, 0, 4, 12):
        call, put = option(market, "NIFTY", "CE", steps), option(market, "NIFTY", "PE", steps)
        assert call.expiry is not None
        years = (
            datetime.combine(call.expiry, time(15, 30)) - minute_start
        ).total_seconds() / SECONDS_PER_YEAR
        forward_gap = spot - float(call.strike) * math.exp(-RISK_FREE_RATE * years)
        c, p = (
            float(market.last_price(call.instrument_token, t)),
            float(market.last_price(put.instrument_token, t)),
        )
        assert c - p == pytest.approx(forward_gap, abs=0.1)


def test_deeper_in_the_money_is_pricier(market: Market) -> None:
    t = at(12, 5)
    calls = [
        market.last_price(option(market, "SENSEX", "CE", k, 1).instrument_token, t) for k in range(-30, 31)
    ]
    puts = [
        market.last_price(option(market, "SENSEX", "PE", k, 1).instrument_token, t) for k in range(-30, 31)
    ]
    assert calls == sorted(calls, reverse=True) and calls[0] > calls[30] > calls[-1]
    assert puts == sorted(puts) and puts[0] < puts[30] < puts[-1]
    assert all(a > b for a, b in zip(calls[:30], calls[1:31], strict=True))  # strictly, in the money


def test_bid_and_ask_straddle_the_last_price_on_the_tick(market: Market) -> None:
    t = at(10, 10, 10)
    spreads_atm, spreads_far = [], []
    for inst in market.instruments:
        ltp = market.last_price(inst.instrument_token, t)
        bid, ask = market.bid_ask(inst.instrument_token, t)
        if not inst.is_option:
            assert bid == ask == ltp
            continue
        assert TICK <= bid <= ltp <= ask and bid < ask
        assert bid % TICK == 0 and ask % TICK == 0
        assert (ask - bid) / TICK <= 8
        away = abs(float(inst.strike) / float(market.last_price(inst.underlying_token or 0, t)) - 1)
        (spreads_atm if away < 0.005 else spreads_far if away > 0.04 else []).append(ask - bid)
    assert sum(spreads_far) / len(spreads_far) > sum(spreads_atm) / len(spreads_atm)


def test_depth_shows_five_levels_each_side_in_whole_lots(market: Market) -> None:
    inst = option(market, "BANKNIFTY", "CE", 2)
    quote = market.quote(inst.instrument_token, at(11, 11, 11))
    bid, ask = market.bid_ask(inst.instrument_token, at(11, 11, 11))
    buy, sell = quote["depth"]["buy"], quote["depth"]["sell"]
    assert len(buy) == len(sell) == 5
    assert buy[0]["price"] == float(bid) and sell[0]["price"] == float(ask)
    assert [lv["price"] for lv in buy] == sorted((lv["price"] for lv in buy), reverse=True)
    assert [lv["price"] for lv in sell] == sorted(lv["price"] for lv in sell)
    for level in buy + sell:
        assert level["quantity"] % inst.lot_size == 0 and level["quantity"] > 0 and level["orders"] >= 1


def test_volume_grows_through_the_day_and_open_interest_stays_steady(market: Market) -> None:
    inst = option(market, "NIFTY", "PE", -1)
    quotes = [market.quote(inst.instrument_token, at(hh, 17)) for hh in range(9, 16)]
    volumes = [q["volume"] for q in quotes]
    assert volumes == sorted(volumes) and volumes[0] > 0 and volumes[-1] > 3 * volumes[0]
    assert all(v % inst.lot_size == 0 for v in volumes)
    ois = [q["oi"] for q in quotes]
    assert min(ois) > 0.9 * max(ois) and len(set(ois)) > 1
    for q in quotes:
        assert q["oi_day_low"] <= q["oi"] <= q["oi_day_high"]
    index_quote = market.quote(NIFTY, at(14, 0))
    assert index_quote["volume"] == 0 and index_quote["oi"] == 0


# ------------------------------------------------------------------ candles agree with seconds
def candle_at(candles: list[list], t: datetime) -> list:
    stamp = t.strftime("%Y-%m-%dT%H:%M:%S+0530")
    return next(c for c in candles if c[0] == stamp)


@pytest.mark.parametrize("minute", [time(9, 15), time(12, 34), time(15, 29)])
def test_minute_candles_are_that_minutes_per_second_prices(market: Market, minute: time) -> None:
    start = datetime.combine(DAY, minute)
    span = 61 if minute == time(15, 29) else 60  # the 15:30:00 price closes the last candle
    for inst in (
        market.instrument(NIFTY),
        option(market, "NIFTY", "CE", 1),
        option(market, "SENSEX", "PE", -2),
    ):
        token = inst.instrument_token
        candle = candle_at(market.candles(token, "minute", at(9, 15), at(15, 30), oi=True), start)
        prices = [float(market.last_price(token, t)) for t in seconds(start, span)]
        assert candle[1:5] == [prices[0], max(prices), min(prices), prices[-1]]
        if inst.is_option:
            before = (
                market.quote(token, start - timedelta(seconds=1))["volume"] if minute != time(9, 15) else 0
            )
            end = market.quote(token, start + timedelta(seconds=span - 1))
            assert candle[5] == end["volume"] - before
            assert candle[6] == end["oi"]
        else:
            assert candle[5] == 0 and candle[6] == 0


@pytest.mark.parametrize(
    "interval,minutes", [("3minute", 3), ("5minute", 5), ("15minute", 15), ("60minute", 60)]
)
def test_longer_candles_aggregate_minute_candles(market: Market, interval: str, minutes: int) -> None:
    token = option(market, "BANKNIFTY", "CE").instrument_token
    ones = market.candles(token, "minute", at(9, 15), at(15, 30))
    longer = market.candles(token, interval, at(9, 15), at(15, 30))
    assert len(longer) == math.ceil(375 / minutes)
    for k, candle in enumerate(longer):
        group = ones[k * minutes : (k + 1) * minutes]
        assert candle[0] == group[0][0]
        assert candle[1:] == [
            group[0][1],
            max(c[2] for c in group),
            min(c[3] for c in group),
            group[-1][4],
            sum(c[5] for c in group),
        ]


def test_day_candle_is_the_whole_session_and_tomorrows_close(market: Market) -> None:
    for token in (SENSEX, option(market, "SENSEX", "CE", 3, 1).instrument_token):
        ones = market.candles(token, "minute", at(9, 15), at(15, 30))
        (day_candle,) = market.candles(token, "day", at(0, 0), at(15, 30))
        assert day_candle[0] == "2026-01-08T00:00:00+0530"
        assert day_candle[1:] == [
            ones[0][1],
            max(c[2] for c in ones),
            min(c[3] for c in ones),
            ones[-1][4],
            sum(c[5] for c in ones),
        ]
        # Kite's `close` is the previous day's close: Friday's quote shows Thursday's close.
        friday_quote = market.quote(token, datetime(2026, 1, 9, 10, 0))
        assert friday_quote["ohlc"]["close"] == day_candle[4]


def test_candles_stop_at_to_with_a_partial_current_candle(market: Market) -> None:
    token = option(market, "NIFTY", "CE", -2).instrument_token
    now = at(10, 7, 30)
    ones = market.candles(token, "minute", at(9, 15), now)
    fives = market.candles(token, "5minute", at(9, 15), now)
    assert ones[-1][0] == "2026-01-08T10:07:00+0530" and fives[-1][0] == "2026-01-08T10:05:00+0530"
    prices = [float(market.last_price(token, t)) for t in seconds(at(10, 7), 31)]
    assert ones[-1][1:5] == [prices[0], max(prices), min(prices), prices[-1]]
    assert fives[-1][4] == float(market.last_price(token, now))
    assert fives[-1][5] == market.quote(token, now)["volume"] - market.quote(token, at(10, 4, 59))["volume"]
    assert market.candles(token, "minute", at(9, 15), at(9, 14)) == []


def test_candles_serve_previous_days_and_skip_weekends(market: Market) -> None:
    days = market.candles(NIFTY, "day", datetime(2026, 1, 1), at(15, 30))
    assert [c[0][:10] for c in days] == [
        "2026-01-01",
        "2026-01-02",
        "2026-01-05",
        "2026-01-06",
        "2026-01-07",
        "2026-01-08",
    ]
    minutes = market.candles(NIFTY, "minute", datetime(2026, 1, 2, 9, 15), datetime(2026, 1, 5, 15, 30))
    assert len(minutes) == 2 * 375
    assert all(c[0][:10] in ("2026-01-02", "2026-01-05") for c in minutes)
    # A strategy warms up from yesterday: yesterday's last candle closes at the close today's quote shows.
    yesterday = market.candles(NIFTY, "minute", datetime(2026, 1, 7), datetime(2026, 1, 7, 23, 59))
    assert yesterday[-1][4] == market.quote(NIFTY, at(9, 30))["ohlc"]["close"]


def test_unknown_interval_is_refused_plainly(market: Market) -> None:
    with pytest.raises(ValueError, match="interval"):
        market.candles(NIFTY, "2minute", at(9, 15), at(10, 0))


# ------------------------------------------------------------------ quotes and ticks agree
def test_quote_has_every_key_kite_sends(market: Market) -> None:
    reference = json.loads((MOCKS / "quote.json").read_text())["data"]["NSE:INFY"]
    for token in (NIFTY, option(market, "NIFTY", "CE").instrument_token):
        quote = market.quote(token, at(10, 0))
        assert set(reference) <= set(quote)
        assert set(reference["ohlc"]) <= set(quote["ohlc"])
        assert set(reference["depth"]["buy"][0]) <= set(quote["depth"]["buy"][0])
        json.dumps(quote)  # JSON-ready as it is
    ohlc_reference = json.loads((MOCKS / "ohlc.json").read_text())["data"]["NSE:INFY"]
    assert set(ohlc_reference) <= set(market.ohlc(NIFTY, at(10, 0)))


def test_quote_day_range_matches_the_candles_so_far(market: Market) -> None:
    for token in (BANKNIFTY, option(market, "BANKNIFTY", "PE", 1).instrument_token):
        now = at(13, 3, 17)
        quote, ohlc = market.quote(token, now), market.ohlc(token, now)
        ones = market.candles(token, "minute", at(9, 15), now)
        expected = {"open": ones[0][1], "high": max(c[2] for c in ones), "low": min(c[3] for c in ones)}
        assert {k: quote["ohlc"][k] for k in expected} == expected
        assert ohlc["ohlc"] == quote["ohlc"] and ohlc["last_price"] == quote["last_price"] == ones[-1][4]
        assert quote["timestamp"] == "2026-01-08 13:03:17"


def test_quote_and_full_tick_say_the_same_thing(market: Market, ticker: KiteTicker) -> None:
    inst = option(market, "SENSEX", "CE", 1)
    now = at(14, 22, 41)
    quote = market.quote(inst.instrument_token, now)
    (tick,) = ticker._parse_binary(encode_frame([market.tick_packet(inst.instrument_token, now, "full")]))
    assert tick["last_price"] == quote["last_price"]
    assert tick["ohlc"] == quote["ohlc"]
    assert tick["volume_traded"] == quote["volume"]
    assert tick["average_traded_price"] == quote["average_price"]
    assert tick["last_traded_quantity"] == quote["last_quantity"]
    assert (tick["total_buy_quantity"], tick["total_sell_quantity"]) == (
        quote["buy_quantity"],
        quote["sell_quantity"],
    )
    assert (tick["oi"], tick["oi_day_high"], tick["oi_day_low"]) == (
        quote["oi"],
        quote["oi_day_high"],
        quote["oi_day_low"],
    )
    assert tick["depth"] == quote["depth"]
    assert tick["exchange_timestamp"] == datetime.fromtimestamp(ist_epoch(now))
    assert tick["last_trade_time"] == datetime.fromtimestamp(
        ist_epoch(datetime.fromisoformat(quote["last_trade_time"]))
    )


def test_index_and_ltp_ticks_match_the_quote(market: Market, ticker: KiteTicker) -> None:
    now = at(9, 48, 2)
    packets = [market.tick_packet(NIFTY, now, mode) for mode in ("ltp", "quote", "full")]
    packets.append(market.tick_packet(option(market, "NIFTY", "PE").instrument_token, now, "ltp"))
    assert [len(p) for p in packets] == [8, 28, 32, 8]
    ltp, quote_tick, full_tick, option_ltp = ticker._parse_binary(encode_frame(packets))
    quote = market.quote(NIFTY, now)
    assert ltp["last_price"] == quote_tick["last_price"] == full_tick["last_price"] == quote["last_price"]
    assert quote_tick["ohlc"] == full_tick["ohlc"] == quote["ohlc"]
    assert full_tick["exchange_timestamp"] == datetime.fromtimestamp(ist_epoch(now))
    assert option_ltp["last_price"] == float(
        market.last_price(option(market, "NIFTY", "PE").instrument_token, now)
    )
    with pytest.raises(ValueError, match="mode"):
        market.tick_packet(NIFTY, now, "snap")


def test_instruments_dump_last_price_is_the_previous_close(market: Market) -> None:
    rows = {
        r["instrument_token"]: r
        for r in KiteConnect("k")._parse_instruments(market.instruments_csv().encode())
    }
    for inst in (market.instrument(NIFTY), option(market, "NIFTY", "CE", 5)):
        assert (
            rows[inst.instrument_token]["last_price"]
            == market.quote(inst.instrument_token, at(10, 0))["ohlc"]["close"]
        )


def test_concurrent_readers_see_the_same_market_as_a_single_reader() -> None:
    serial = Market(seed=5, trading_day=DAY)
    shared = Market(seed=5, trading_day=DAY)
    tokens = [i.instrument_token for i in serial.instruments[::25]]
    times = [at(10, 0, s) for s in range(0, 40, 4)]
    expected = [serial.quote(tok, t) for t in times for tok in tokens]
    results: list[list[dict]] = [[] for _ in range(4)]

    def read(out: list[dict]) -> None:
        out.extend(shared.quote(tok, t) for t in times for tok in tokens)

    threads = [threading.Thread(target=read, args=(out,)) for out in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(out == expected for out in results)


def test_a_premium_gap_holds_from_its_moment_on_and_leaves_the_past_and_other_contracts_alone() -> None:
    m = Market(seed=21, trading_day=DAY)  # its own market: the gap must not leak into the shared fixture
    calls = [i for i in m.instruments if i.is_option and i.name == "NIFTY" and i.is_call]
    inst, other = calls[len(calls) // 2], calls[len(calls) // 2 + 1]
    token = inst.instrument_token
    earlier, moment, later = at(10, 0), at(11, 0), at(11, 5)
    past, model_later = m.last_price(token, earlier), m.last_price(token, later)
    other_later = m.last_price(other.instrument_token, later)
    before, after = m.gap_premium(token, Decimal(-40), moment)
    assert after == (before * Decimal("0.6") / Decimal("0.05")).to_integral_value() * Decimal("0.05")
    assert m.last_price(token, earlier) == past  # history keeps the model's path
    assert abs(m.last_price(token, later) - model_later * Decimal("0.6")) <= Decimal("0.05")
    assert m.last_price(other.instrument_token, later) == other_later
    bid, ask = m.bid_ask(token, moment)
    assert bid <= after <= ask and Decimal(str(m.ohlc(token, moment)["ohlc"]["low"])) <= after
    m.gap_premium(token, Decimal(50), moment)  # gaps compound: 0.6 × 1.5
    assert abs(m.last_price(token, moment) - before * Decimal("0.9")) <= Decimal("0.05")
    with pytest.raises(ValueError, match="index"):
        m.gap_premium(m.instruments[0].instrument_token, Decimal(-10), moment)
    with pytest.raises(ValueError, match="less than 100"):
        m.gap_premium(token, Decimal(-100), moment)


def test_a_contract_marked_untraded_has_no_trade_today() -> None:
    m = Market(seed=21, trading_day=DAY)
    inst = next(i for i in m.instruments if i.is_option)
    assert m.traded_today(inst.instrument_token, at(10, 0))
    m.mark_untraded(inst.instrument_token)
    assert not m.traded_today(inst.instrument_token, at(10, 0))
    assert m.traded_today(m.instruments[0].instrument_token, at(10, 0))  # an index is never "untraded"
