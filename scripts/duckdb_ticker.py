#!/usr/bin/env python3
"""The Athena step of the ticker job, with DuckDB: reads the job's Hive-partitioned output (CSV or Parquet) from
S3 or a directory and prints it as `ticker,price,window_end_ms` rows, sorted (the format of
ticker_reference.py), so that tests can compare the two.

Usage: duckdb_ticker.py [--endpoint HOST:PORT] [--format csv|parquet] [--date] [--query SQL] LOCATION

With --query, runs SQL over the view `ticker_averages` (columns ticker, price, event_time[, date]) instead and
prints its rows, as Athena would answer it.

LOCATION is s3://BUCKET/PREFIX (with --endpoint, a local S3 such as moto: path-style, credentials test/test) or a
directory. --date: the layout has a date=YYYY-MM-DD level under the ticker (--partition-by ticker,date). Needs
PyPI duckdb==1.5.5 and duckdb-extension-httpfs==1.5.5 (the httpfs extension is loaded from that wheel: this
machine cannot download extensions).
"""
import argparse
import calendar
import math
import os

import duckdb


def connect(endpoint):
    con = duckdb.connect()
    if endpoint:
        import duckdb_extension_httpfs
        ext = os.path.join(os.path.dirname(duckdb_extension_httpfs.__file__), "extensions", "v" + duckdb.__version__, "httpfs.duckdb_extension")
        con.execute(f"LOAD '{ext}'")
        con.execute(f"""CREATE SECRET local_s3 (TYPE s3, PROVIDER config, KEY_ID 'test', SECRET 'test', REGION 'us-east-1',
            ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false)""")
    return con


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("location")
    parser.add_argument("--endpoint")
    parser.add_argument("--format", default="csv", choices=["csv", "parquet"])
    parser.add_argument("--date", action="store_true")
    parser.add_argument("--query")
    a = parser.parse_args()
    con = connect(a.endpoint)
    glob = a.location.rstrip("/") + ("/ticker=*/date=*/part-*" if a.date else "/ticker=*/part-*")
    types = "{'ticker': VARCHAR, 'date': VARCHAR}" if a.date else "{'ticker': VARCHAR}"
    if a.format == "csv":
        source = f"""read_csv('{glob}', header = false, auto_detect = false, delim = ',', quote = '"', escape = '"',
            columns = {{'price': 'DOUBLE', 'event_time': 'TIMESTAMP'}}, hive_partitioning = true, hive_types = {types})"""
    else:
        source = f"read_parquet('{glob}', hive_partitioning = true, hive_types = {types})"
    con.execute(f"CREATE VIEW ticker_averages AS SELECT ticker, price, event_time{', date' if a.date else ''} FROM {source}")
    if a.query:
        con.sql(a.query).show(max_rows=1000)
        return
    rows = con.sql("SELECT * FROM ticker_averages").fetchall()
    out = []
    for row in rows:
        ticker, price, event_time = row[:3]
        if a.date:
            assert row[3] == event_time.strftime("%Y-%m-%d"), f"date partition {row[3]} of a row ending {event_time}"
        ms = calendar.timegm(event_time.timetuple()) * 1000 + event_time.microsecond // 1000
        if price is None:
            text = ""
        elif math.isnan(price):
            text = "NaN"
        elif math.isinf(price):
            text = "Infinity" if price > 0 else "-Infinity"
        else:
            text = repr(price)
        out.append((ticker, ms, text))
    print("ticker,price,window_end_ms")
    for ticker, ms, text in sorted(out):
        print(f"{ticker},{text},{ms}")


if __name__ == "__main__":
    main()
