#!/usr/bin/env python3
"""An independent implementation of the ticker job (docs/jobs/ticker.md), for the tests: the expected rows of
`taxiflow run ticker` on JSON-lines files, computed without any of taxiflow's code.

Usage: ticker_reference.py [--window-ms W] [--delay-ms D] [--dead-letters OUT] INPUT...

Each INPUT file is one partition, read in order. Per partition the watermark is the largest event time of the
well-formed events so far minus D (default 5000 ms), and an event is late when the end of its W-ms window
(default 60000) minus 1 ms is at or below the watermark before it. Prints `ticker,price,window_end_ms` rows
sorted by ticker and window end (the header first), the ticker as a SQL engine reads it back from a Hive
partition (the value itself; __DEFAULT_PARTITION__ for a NULL or empty ticker), the price as Python's repr (shortest round trip; NaN, Infinity, -Infinity;
empty for NULL), the average being math.fsum of the prices divided by their count. With --dead-letters, writes
`PATH<TAB>LINE<TAB>late|malformed` lines for the events left out.

Decoding follows docs/jobs/ticker.md §1: strict JSON objects (duplicate keys, NaN literals and numbers beyond the
double range are malformed), event_time in Java's ISO_LOCAL_DATE_TIME (years 1970-9999), the ticker a string
or the compact JSON text of another value, the price a number or a trimmed numeric string (or NaN, Infinity,
-Infinity).
"""
import argparse
import calendar
import datetime
import json
import math
import re
import sys
from fractions import Fraction

LOCAL_DATE_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{0,9}))?)?$")
JSON_NUMBER = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")
ESCAPED = set('"#%\'*/:=?\\{[]^') | {chr(0x7F)} | {chr(c) for c in range(0x20)}


class Malformed(Exception):
    pass


def escape(value):
    if value == "":
        return "__DEFAULT_PARTITION__"
    return "".join("%%%02X" % ord(c) if c in ESCAPED else c for c in value)


def event_time_ms(text):
    m = LOCAL_DATE_TIME.match(text)
    if not m:
        raise Malformed("event_time")
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    fraction = (m.group(7) or "") + "000"
    if year < 1970:
        raise Malformed("event_time")
    try:
        dt = datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise Malformed("event_time")
    return calendar.timegm(dt.timetuple()) * 1000 + int(fraction[:3])


def parse_number(text):
    value = float(text)
    if math.isinf(value):
        raise Malformed("price")
    return value


def reject_constant(name):
    raise Malformed(f"literal {name}")


def pairs(items):
    keys = [k for k, _ in items]
    if len(keys) != len(set(keys)):
        raise Malformed("duplicate key")
    return dict(items)


def decode(line):
    """None for a blank line, else (event_time_ms, ticker or None, price or None); raises Malformed."""
    line = line.rstrip("\r")
    if not line.strip():
        return None
    line.encode("utf-8")  # invalid UTF-8 (surrogate escapes) raises UnicodeError
    try:
        obj = json.loads(line, object_pairs_hook=pairs, parse_constant=reject_constant, parse_float=parse_number,
                         parse_int=lambda t: int(t))
    except (ValueError, RecursionError):
        raise Malformed("json")
    if not isinstance(obj, dict):
        raise Malformed("not an object")
    t = obj.get("event_time")
    if not isinstance(t, str):
        raise Malformed("event_time")
    ms = event_time_ms(t)
    ticker = obj.get("ticker")
    if ticker is not None and not isinstance(ticker, str):
        ticker = str(ticker) if isinstance(ticker, int) and not isinstance(ticker, bool) else json.dumps(ticker, separators=(",", ":"))
    if ticker is not None and len(("ticker=" + escape(ticker)).encode()) > 255:
        raise Malformed("ticker")
    price = obj.get("price")
    if price is None:
        pass
    elif isinstance(price, bool) or isinstance(price, (dict, list)):
        raise Malformed("price")
    elif isinstance(price, (int, float)):
        price = float(price)
        if math.isinf(price):
            raise Malformed("price")
    else:
        text = price.strip(" \t\n\r\x0b\x0c")
        if text in ("NaN", "Infinity", "-Infinity"):
            price = float(text.replace("Infinity", "inf"))
        elif JSON_NUMBER.match(text):
            price = parse_number(text)
        else:
            raise Malformed("price")
    return ms, ticker, price


def average(prices):
    """AVG: NULL without values; NaN with a NaN or both infinities; an infinity; else the exact sum rounded once,
    divided by the count."""
    if not prices:
        return None
    if any(math.isnan(p) for p in prices) or (math.inf in prices and -math.inf in prices):
        return math.nan
    if math.inf in prices:
        return math.inf
    if -math.inf in prices:
        return -math.inf
    try:
        total = math.fsum(prices)
    except OverflowError:
        exact = sum((Fraction(p) for p in prices), Fraction(0))
        try:
            total = float(exact)
        except OverflowError:
            total = math.inf if exact > 0 else -math.inf
    return total / len(prices)


def text(price):
    if price is None:
        return ""
    if math.isnan(price):
        return "NaN"
    if math.isinf(price):
        return "Infinity" if price > 0 else "-Infinity"
    return repr(price)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--window-ms", type=int, default=60_000)
    parser.add_argument("--delay-ms", type=int, default=5_000)
    parser.add_argument("--dead-letters")
    a = parser.parse_args()
    windows = {}  # (ticker, window end) -> [non-null prices], with a marker for NULL-only windows
    dead = []
    for path in a.inputs:
        watermark = None
        with open(path, encoding="utf-8", errors="surrogateescape", newline="\n") as f:
            for number, line in enumerate(f, start=1):
                line = line.rstrip("\n")
                try:
                    event = decode(line)
                except (Malformed, UnicodeError):
                    dead.append((path, number, "malformed"))
                    continue
                if event is None:
                    continue
                ms, ticker, price = event
                end = ms - ms % a.window_ms + a.window_ms
                if watermark is not None and end - 1 <= watermark:
                    dead.append((path, number, "late"))
                    continue
                if ms >= a.delay_ms:
                    watermark = max(watermark if watermark is not None else ms - a.delay_ms, ms - a.delay_ms)
                values = windows.setdefault((ticker, end), [])
                if price is not None:
                    values.append(price)
    rows = sorted((ticker or "__DEFAULT_PARTITION__", end, text(average(prices))) for (ticker, end), prices in windows.items())
    out = sys.stdout
    out.write("ticker,price,window_end_ms\n")
    for ticker, end, price in rows:
        out.write(f"{ticker},{price},{end}\n")
    if a.dead_letters:
        with open(a.dead_letters, "w") as f:
            for path, number, why in dead:
                f.write(f"{path}\t{number}\t{why}\n")


if __name__ == "__main__":
    main()
