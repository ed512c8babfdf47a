#!/usr/bin/env python3
"""An independent, deliberately naive implementation of the reference taxi job (shared/spec/reference-job.md
section 3) in plain Python, used to produce and check the golden files under tests/golden/.

It shares no code with taxiflow: its own geohash bisection, CSV reading and window arithmetic.
Usage: reference_job.py PROFILE OUT_DIR INPUT...   (inputs: the bundled CSV samples, plain or gzip)
Writes OUT_DIR/pickup_count.jsonl and OUT_DIR/trip_duration.jsonl, sorted by (timestamp, _id).
"""
import csv, gzip, io, json, sys, datetime

B32 = "0123456789bcdefghjkmnpqrstuvwxyz"

def geohash(lat, lon, p):
    la, lo, out, even = [-90.0, 90.0], [-180.0, 180.0], "", True
    for _ in range(p):
        c = 0
        for _ in range(5):
            c <<= 1
            r, v = (lo, lon) if even else (la, lat)
            m = (r[0] + r[1]) / 2
            if v >= m:
                c |= 1; r[0] = m
            else:
                r[1] = m
            even = not even
        out += B32[c]
    return out

def decode(h):
    la, lo, even = [-90.0, 90.0], [-180.0, 180.0], True
    for ch in h:
        c = B32.index(ch)
        for b in range(4, -1, -1):
            r = lo if even else la
            m = (r[0] + r[1]) / 2
            if (c >> b) & 1: r[0] = m
            else: r[1] = m
            even = not even
    return la, lo

def neighbours(h):
    la, lo = decode(h)
    dlat, dlon = la[1] - la[0], lo[1] - lo[0]
    clat, clon = (la[0] + la[1]) / 2, (lo[0] + lo[1]) / 2
    return {geohash(clat + i * dlat, clon + j * dlon, len(h))
            for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)}

def ts(s):
    s = s.strip()
    d = datetime.datetime.strptime(s[:19].replace("T", " "), "%Y-%m-%d %H:%M:%S")
    return int(d.replace(tzinfo=datetime.timezone.utc).timestamp()) * 1000

def in_box(lat, lon, b):
    return b[0] <= lat <= b[1] and b[2] <= lon <= b[3]

NYC = (40.560, 40.878, -74.054, -73.722)
JFK = (40.632, 40.654, -73.800, -73.761)
LGA = (40.766, 40.778, -73.881, -73.859)
RA_NYC = neighbours("dr72")
RA_JFK = neighbours("dr5x0z")
RA_LGA = {"dr5ryy", "dr5rzn"} | neighbours("dr5rzjx")

def in_set(lat, lon, cells):
    return any(geohash(lat, lon, len(c)) == c for c in cells)

def read_trips(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    rows = list(csv.reader(io.StringIO(raw.decode())))
    if rows and any("pickup" in c.lower() for c in rows[0]):
        h = [c.strip().lower() for c in rows[0]]
        def col(*names):
            for n in names:
                if n in h: return h.index(n)
            raise KeyError(names)
        pt = col("tpep_pickup_datetime", "pickup_datetime", "trip_pickup_datetime")
        dt = col("tpep_dropoff_datetime", "dropoff_datetime", "trip_dropoff_datetime")
        plo, pla = col("pickup_longitude", "start_lon"), col("pickup_latitude", "start_lat")
        dlo, dla = col("dropoff_longitude", "end_lon"), col("dropoff_latitude", "end_lat")
        for r in rows[1:]:
            if not r: continue
            try:
                yield ts(r[pt]), ts(r[dt]), float(r[pla]), float(r[plo]), float(r[dla]), float(r[dlo])
            except (ValueError, IndexError):
                pass
    else:
        for r in rows:
            if len(r) == 11 and r[1] == "END":
                # rideId,END,dropoff,pickup,startLon,startLat,endLon,endLat,...
                yield ts(r[3]), ts(r[2]), float(r[5]), float(r[4]), float(r[7]), float(r[6])

def main():
    profile, out_dir, inputs = sys.argv[1], sys.argv[2], sys.argv[3:]
    win = 600_000 if profile == "refarch" else 3_600_000
    hp = 6 if profile == "refarch" else 7
    ts_off = -1 if profile == "refarch" else 0
    counts, durs = {}, {}
    late = 0
    for path in inputs:
        max_seen = None  # msf: per-file bounded out-of-orderness of 2 min, Flink's max - bound - 1
        for pu, do, plat, plon, dlat, dlon in read_trips(path):
            if profile == "msf":
                if max_seen is not None and do <= max_seen - 120_001:
                    late += 1
                    continue
                max_seen = do if max_seen is None else max(max_seen, do)
            if profile == "refarch":
                if not (in_set(plat, plon, RA_NYC) and in_set(dlat, dlon, RA_NYC)): continue
            elif not (in_box(plat, plon, NYC) and in_box(dlat, dlon, NYC)): continue
            end = do - do % win + win
            k = (end, geohash(plat, plon, hp))
            counts[k] = counts.get(k, 0) + 1
            if profile == "refarch":
                ap = "JFK" if in_set(dlat, dlon, RA_JFK) else "LGA" if in_set(dlat, dlon, RA_LGA) else None
            else:
                ap = "JFK" if in_box(dlat, dlon, JFK) else "LGA" if in_box(dlat, dlon, LGA) else None
            if ap:
                d = do - pu
                minutes = -((-d) // 60000) if d < 0 else d // 60000
                k = (end, geohash(plat, plon, 6), ap)
                s, n = durs.get(k, (0, 0))
                durs[k] = (s + minutes, n + 1)
    pc = []
    for (end, cell), n in counts.items():
        if profile == "refarch" and n < 2: continue
        pc.append({"_id": f"pickup_count-{cell}-{end - win}-{end}", "location": cell, "pickup_count": n,
                   "timestamp": end + ts_off})
    td = []
    for (end, cell, ap), (s, n) in durs.items():
        if n < 2: continue
        td.append({"_id": f"trip_duration-{cell}-{ap}-{end - win}-{end}", "location": cell,
                   "airport_code": ap, "sum_trip_duration": s, "avg_trip_duration": s / n,
                   "timestamp": end + ts_off})
    print(f"late {late}", file=sys.stderr)
    for name, docs in (("pickup_count", pc), ("trip_duration", td)):
        docs.sort(key=lambda d: (d["timestamp"], d["_id"]))
        with open(f"{out_dir}/{name}.jsonl", "w") as f:
            for d in docs:
                f.write(json.dumps(d, separators=(",", ":")) + "\n")

if __name__ == "__main__":
    main()
