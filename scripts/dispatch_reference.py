#!/usr/bin/env python3
"""An independent implementation of the dispatch job (docs/jobs/dispatch.md), for the tests: the dispatch and close
messages `taxiflow run dispatch` must write for alert-topic files, computed without any of taxiflow's code and
without differential dataflow — by brute force: at every time an alert becomes or stops being due, the open work
order of the device is recomputed from all its due alerts.

Usage: dispatch_reference.py INPUT...

Each INPUT is a JSON-lines file of alert, revoke and watermark records (alerts.jsonl of `taxiflow run alerts`);
the input is read to its end, so lateness does not apply (an input from `taxiflow run alerts` has no late
records: its watermark records follow the messages they cover). An alert X is due on [alert_time + max(delay_ms,
0), revoke_time); the open work order of a device at time t is its due alert with the highest priority, then the
earliest alert_time, then the smallest alert_id. Prints the messages as JSON lines sorted by (time, close before
dispatch, alert_id). A second alert with the same alert_id, or a revoke of an already revoked alert, is left
out (the job dead-letters it as `duplicate`); the number of those is printed to standard error.
"""
import calendar
import json
import re
import sys

INSTANT = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z$")


def ms(text):
    m = INSTANT.match(text)
    y, mo, d, h, mi, s, f = (int(g) for g in m.groups())
    return calendar.timegm((y, mo, d, h, mi, s)) * 1000 + f


def iso(t):
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1000)) + ".%03dZ" % (t % 1000)


def main():
    alerts, revokes, duplicates = {}, {}, 0
    for path in sys.argv[1:]:
        for line in open(path, encoding="utf-8"):
            if not line.strip():
                continue
            r = json.loads(line)
            if r["type"] == "alert":
                if r["alert_id"] in alerts:
                    duplicates += 1
                    continue
                alerts[r["alert_id"]] = r
            elif r["type"] == "revoke":
                if r["alert_id"] in revokes:
                    duplicates += 1
                    continue
                revokes[r["alert_id"]] = ms(r["revoke_time"])
    by_device = {}
    for aid, a in alerts.items():
        start = ms(a["alert_time"]) + max(a["delay_ms"], 0)
        end = revokes.get(aid)
        by_device.setdefault(a["device"], []).append((start, end, a))
    out = []
    for device, items in by_device.items():
        times = sorted({s for s, _, _ in items} | {e for _, e, _ in items if e is not None})
        current = None
        for t in times:
            due = [a for s, e, a in items if s <= t and (e is None or t < e)]
            top = min(due, key=lambda a: (-a["priority"], ms(a["alert_time"]), a["alert_id"])) if due else None
            if (top and top["alert_id"]) != (current and current["alert_id"]):
                if current is not None:
                    end = revokes.get(current["alert_id"])
                    reason = "revoked" if end is not None and t >= end else "superseded"
                    out.append((t, 0, current["alert_id"], {"type": "close", "alert_id": current["alert_id"], "device": device, "alert_type": current["alert_type"], "reason": reason, "close_time": iso(t)}))
                if top is not None:
                    out.append((t, 1, top["alert_id"], {"type": "dispatch", "alert_id": top["alert_id"], "device": device, "alert_type": top["alert_type"], "priority": top["priority"], "info": top["info"], "dispatch_time": iso(t)}))
                current = top
    out.sort(key=lambda m: m[:3])
    for m in out:
        sys.stdout.write(json.dumps(m[3], separators=(",", ":"), ensure_ascii=False) + "\n")
    print(f"duplicates {duplicates}", file=sys.stderr)


if __name__ == "__main__":
    main()
