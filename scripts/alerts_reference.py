#!/usr/bin/env python3
"""An independent implementation of the alerts job (docs/jobs/alerts.md §1-§4), for the tests: the alert and
revoke messages `taxiflow run alerts` must write for JSON-lines files of device events, computed without any of
taxiflow's code.

Usage: alerts_reference.py --rules RULES.json [--sla SLA.json] [--bound-ms B] [--dead-letters OUT] INPUT...

RULES.json is a list of alert_rule rows ({"rule_id", "template", "alert_type", "priority", "within_ms", "params"});
SLA.json a list of device_sla rows ({"device_id", "info", "overrides", "delay_ms"}). Each INPUT file is one
partition, read in order: per partition the watermark is the largest event time of the well-formed events read
so far minus B (default 5000) minus 1 ms, and an event at or below it is late. Among the other events, a second
one of the same device with the same (Timestamp, ID) is a duplicate. The rest are evaluated per device in
(Timestamp, ID) order, ID compared as bytes. Prints the messages as JSON lines (the job's field order) sorted by
(event time, alert_id), an alert before a revoke of the same alert in the same millisecond. With --dead-letters,
writes `PATH<TAB>LINE<TAB>late|duplicate|malformed` lines.
"""
import argparse
import calendar
import hashlib
import json
import re
import sys

INSTANT = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
I64 = (-(2**63), 2**63 - 1)


class Malformed(Exception):
    pass


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and I64[0] <= v <= I64[1]


def parse_instant(s):
    m = INSTANT.match(s)
    if not m:
        raise Malformed("Param.Timestamp")
    y, mo, d, h, mi, se = (int(g) for g in m.groups()[:6])
    if not (1 <= mo <= 12) or d < 1 or d > calendar.monthrange(y, mo)[1] or h > 23 or mi > 59 or se > 59:
        raise Malformed("Param.Timestamp")
    fraction = m.group(7)
    millis = int((fraction[1:] + "00")[:3]) if fraction else 0
    zone = m.group(8)
    offset = 0
    if zone != "Z":
        oh, om = int(zone[1:3]), int(zone[4:6])
        if oh > 23 or om > 59:
            raise Malformed("Param.Timestamp")
        offset = (oh * 60 + om) * (1 if zone[0] == "+" else -1)
    days = calendar.timegm((y, mo, d, 0, 0, 0)) // 86400
    ms = (((days * 24 + h) * 60 + mi - offset) * 60 + se) * 1000 + millis
    if ms < 0:
        raise Malformed("Param.Timestamp")
    return ms


def decode(line):
    if not line:
        raise Malformed("empty")
    try:
        value = json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(Malformed(c)))
    except (ValueError, RecursionError):
        raise Malformed("json")
    if not isinstance(value, dict):
        raise Malformed("object")
    message = value.get("Message")
    if not isinstance(message, str):
        raise Malformed("Message")
    param = value.get("Param")
    if not isinstance(param, dict):
        raise Malformed("Param")
    code = param.get("ErrCode")
    if code is not None and not is_int(code):
        raise Malformed("ErrCode")
    ts = param.get("Timestamp")
    if not isinstance(ts, str):
        raise Malformed("Timestamp")
    t = parse_instant(ts)
    ident = param.get("ID")
    if not isinstance(ident, str) or ident == "":
        raise Malformed("ID")
    device = value.get("DeviceNumber")
    if not is_int(device):
        raise Malformed("DeviceNumber")
    return {"t": t, "id": ident, "device": device, "message": message, "code": code}


def matches(cls, e):
    return e["message"] == cls["message"] and (cls.get("err_code") is None or e["code"] == cls["err_code"])


def iso(ms):
    seconds, millis = divmod(ms, 1000)
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03dZ" % millis


def alert_id(rule_id, device, trigger):
    return hashlib.sha256(f"{rule_id}:{device}:{trigger}".encode()).hexdigest()


def evaluate(rules, sla, events):
    """events: one device's, in event order. Yields (time, kind order, message dict)."""
    states = {r["rule_id"]: {"first": None, "second": None, "active": None} for r in rules}
    for e in events:
        here = (e["t"], e["id"].encode())
        for r in rules:
            p, s = r["params"], states[r["rule_id"]]
            # 1. revoke
            if s["active"] is not None and any(matches(c, e) for c in p["revoke"]):
                yield (e["t"], {"type": "revoke", "alert_id": s["active"], "rule_id": r["rule_id"], "alert_type": r["alert_type"],
                                "device": e["device"], "revoke_time": iso(e["t"]), "revoke_event_id": e["id"]})
                s["active"] = None
            # 2. unless
            if matches(p["unless"], e):
                s["first"] = None
            # 3. record
            is_first, is_second = matches(p["first"], e), matches(p["second"], e)
            if is_first:
                s["first"] = here
            if is_second:
                s["second"] = here
            # 4. raise
            if s["active"] is not None or s["first"] is None or e["t"] - s["first"][0] > r["within_ms"]:
                continue
            if r["template"] == "co_occurrence":
                if not (is_first or is_second) or s["second"] is None or e["t"] - s["second"][0] > r["within_ms"] or s["second"] == s["first"]:
                    continue
                fault = min(s["first"], s["second"])
            else:
                if not is_second or s["first"] == here:
                    continue
                fault = s["first"]
            aid = alert_id(r["rule_id"], e["device"], e["id"])
            s["active"] = aid
            row = sla.get(e["device"], {})
            yield (e["t"], {"type": "alert", "alert_id": aid, "rule_id": r["rule_id"], "alert_type": r["alert_type"],
                            "priority": r["priority"], "device": e["device"], "alert_time": iso(e["t"]), "fault_time": iso(fault[0]),
                            "trigger_event_id": e["id"], "fault_event_id": fault[1].decode(), "info": row.get("info"),
                            "overrides": row.get("overrides"), "delay_ms": max(0, row.get("delay_ms") or 0)})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", required=True)
    ap.add_argument("--sla")
    ap.add_argument("--bound-ms", type=int, default=5000)
    ap.add_argument("--dead-letters")
    ap.add_argument("inputs", nargs="+")
    args = ap.parse_args()
    rules = []
    for row in json.load(open(args.rules)):
        row = dict(row)
        if isinstance(row["params"], str):
            row["params"] = json.loads(row["params"])
        if row.get("enabled", True):
            rules.append(row)
    rules.sort(key=lambda r: r["rule_id"])
    sla = {r["device_id"]: r for r in json.load(open(args.sla))} if args.sla else {}
    dead = []
    accepted = {}  # (device, t, id) -> event
    for path in args.inputs:
        watermark = None
        with open(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                line = raw.rstrip(b"\n").rstrip(b"\r")
                if not line.strip():
                    continue
                try:
                    e = decode(line.decode("utf-8"))
                except (Malformed, UnicodeDecodeError):
                    dead.append((path, n, "malformed"))
                    continue
                late = watermark is not None and e["t"] <= watermark
                watermark = max(watermark if watermark is not None else -(2**63), e["t"] - args.bound_ms - 1)
                if late:
                    dead.append((path, n, "late"))
                    continue
                key = (e["device"], e["t"], e["id"])
                if key in accepted:
                    dead.append((path, n, "duplicate"))
                    continue
                accepted[key] = e
    by_device = {}
    for e in accepted.values():
        by_device.setdefault(e["device"], []).append(e)
    messages = []
    seq = 0
    for device, events in by_device.items():
        events.sort(key=lambda e: (e["t"], e["id"].encode()))
        for t, msg in evaluate(rules, sla, events):
            messages.append((t, msg["alert_id"], seq, msg))
            seq += 1
    messages.sort(key=lambda m: (m[0], m[1], m[2]))
    out = sys.stdout
    for _, _, _, msg in messages:
        out.write(json.dumps(msg, separators=(",", ":"), ensure_ascii=False) + "\n")
    if args.dead_letters:
        with open(args.dead_letters, "w") as f:
            for path, n, reason in dead:
                f.write(f"{path}\t{n}\t{reason}\n")


if __name__ == "__main__":
    main()
