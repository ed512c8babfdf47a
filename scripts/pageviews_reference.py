#!/usr/bin/env python3
"""Independent re-computation of the page-view job (docs/jobs/pageviews.md), for the tests.

  pageviews_reference.py reference OUT_DIR [--window-ms N] [--delay-ms N] [--timezone ZONE] [--geoip F.mmdb ...] LOG...
      Each LOG is one partition (read in order). Writes OUT_DIR/{total,by_path,by_country,today}.jsonl in the
      job's file-sink layout (lines ordered by window end, then key) and OUT_DIR/dead_letter.jsonl with
      {"reason","source","line"} of every malformed and late line.
  pageviews_reference.py replicate SAMPLE.log OUT.log --lines N [--minutes-per-copy M]
      The benchmark's log: the sample repeated forward in time, each copy squeezed into M minutes (default 1)
      and following the one before, its hosts made distinct per copy (and per line mod 6: ≥ 1M distinct hosts per
      day), its paths given one of 150 variants (≥ 10k paths), until N lines.
  pageviews_reference.py generate OUT.log --seed S --lines N [--servers K] [--lag-s L] [--dirty]
      A log of N lines from K servers over IPv4/IPv6 and named hosts, merged so that server i is i*L seconds
      behind the first (out-of-order and late lines); --dirty adds malformed lines (free text, bad request
      fields, impossible dates, invalid UTF-8, CRLF, empty lines).

Own parser (not the job's regular expression): the line is split by hand into its fields.
"""
import argparse, calendar, collections, datetime, json, os, random, sys

MONTHS = {m: i + 1 for i, m in enumerate('Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec'.split())}


def token(s, i, stop):
    """The run of characters from i not in `stop` (at least one), and the index after it; None when empty."""
    j = i
    while j < len(s) and s[j] not in stop:
        j += 1
    return (s[i:j], j) if j > i else (None, i)


def parse(line):
    """(ts_ms, host, path) of an accepted line, 'empty', or the string 'malformed'/'instant'."""
    if line == '':
        return 'empty'
    fields = []
    i = 0
    for _ in range(3):                      # host ident user, each followed by one space
        t, i = token(line, i, ' ')
        if t is None or line[i:i + 1] != ' ':
            return 'malformed'
        fields.append(t)
        i += 1
    if line[i:i + 1] != '[':
        return 'malformed'
    stamp = line[i + 1:i + 27]
    if len(stamp) != 26 or line[i + 27:i + 28] != ']':
        return 'malformed'
    i += 28
    d, mon, y, hh, mm, ss, sign, oh, om = stamp[0:2], stamp[3:6], stamp[7:11], stamp[12:14], stamp[15:17], stamp[18:20], stamp[21], stamp[22:24], stamp[24:26]
    if (stamp[2], stamp[6], stamp[11], stamp[14], stamp[17], stamp[20]) != ('/', '/', ':', ':', ':', ' '):
        return 'malformed'
    digits = d + y + hh + mm + ss + oh + om
    if not all('0' <= c <= '9' for c in digits) or mon not in MONTHS or sign not in '+-' or int(oh) > 23 or int(om) > 59:
        return 'malformed'
    if line[i:i + 2] != ' "':
        return 'malformed'
    i += 2
    request = []
    for k in range(3):
        t, i = token(line, i, ' "')
        if t is None:
            return 'malformed'
        request.append(t)
        want = ' ' if k < 2 else '"'
        if line[i:i + 1] != want:
            return 'malformed'
        i += 1
    status = line[i + 1:i + 4]
    if line[i:i + 1] != ' ' or len(status) != 3 or not status.isascii() or not status.isdigit():
        return 'malformed'
    i += 4
    if line[i:i + 1] != ' ':
        return 'malformed'
    i += 1
    if line[i:i + 1] == '-':
        pass
    else:
        j = i
        while j < len(line) and '0' <= line[j] <= '9':
            j += 1
        if j == i:
            return 'malformed'
    year, month, day = int(y), MONTHS[mon], int(d)
    if not 1970 <= year <= 9999 or not 1 <= day <= calendar.monthrange(year, month)[1] or int(hh) > 23 or int(mm) > 59 or int(ss) > 59:
        return 'instant'
    off = (1 if sign == '+' else -1) * (int(oh) * 3600 + int(om) * 60)
    secs = calendar.timegm((year, month, day, int(hh), int(mm), int(ss))) - off
    if secs < 0:
        return 'instant'
    return secs * 1000, fields[0], request[1].split('?', 1)[0]


class Countries:
    def __init__(self, files):
        import ipaddress, maxminddb
        self.ipaddress = ipaddress
        self.readers = [maxminddb.open_database(f) for f in files]

    def of(self, host):
        try:
            ip = self.ipaddress.ip_address(host)
        except ValueError:
            return '--'
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        for r in self.readers:
            try:
                rec = r.get(ip)
            except ValueError:
                continue
            if rec:
                code = (rec.get('country') or {}).get('iso_code') or rec.get('country_code')
                if code:
                    return code
        return '--'


def reference(a):
    zone = None if a.timezone in (None, 'UTC') else __import__('zoneinfo').ZoneInfo(a.timezone)
    countries = Countries(a.geoip) if a.geoip else None
    counted, dead = [], []
    for path in a.logs:
        wm = None
        data = (__import__('gzip').open if path.endswith('.gz') else open)(path, 'rb').read()
        raws = data.split(b'\n')
        if raws and raws[-1] == b'':
            raws.pop()
        for n, raw in enumerate(raws, 1):
            raw = raw[:-1] if raw.endswith(b'\r') else raw
            p = parse(raw.decode('utf-8', 'replace'))
            if p == 'empty':
                continue
            if isinstance(p, str):
                dead.append({'reason': 'malformed', 'source': path, 'line': n})
                continue
            ts, host, page = p
            end = ts - ts % a.window_ms + a.window_ms
            if wm is not None and end - 1 <= wm:
                dead.append({'reason': 'late', 'source': path, 'line': n})
                continue
            wm = ts - a.delay_ms if wm is None else max(wm, ts - a.delay_ms)
            counted.append((ts, end, host, page))
    pv, hosts = collections.Counter(), collections.defaultdict(set)
    for ts, end, host, page in counted:
        keys = [('total', end, None), ('by_path', end, page)]
        if countries:
            keys.append(('by_country', end, countries.of(host)))
        for k in keys:
            pv[k] += 1
            hosts[k].add(host)
    os.makedirs(a.out, exist_ok=True)
    names = ['total', 'by_path'] + (['by_country'] if countries else [])
    for name in names:
        keyname = {'by_path': 'path', 'by_country': 'country'}.get(name)
        rows = sorted((k for k in pv if k[0] == name), key=lambda k: (k[1], (k[2] or '').encode()))
        with open(os.path.join(a.out, name + '.jsonl'), 'w') as f:
            for k in rows:
                doc = {'window_end_ms': k[1]}
                if keyname:
                    doc[keyname] = k[2]
                doc.update(pv=pv[k], uv=len(hosts[k]))
                f.write(json.dumps(doc, ensure_ascii=False, separators=(',', ':')) + '\n')

    def local_date(ms):
        t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
        return (t.astimezone(zone) if zone else t).date()

    def day_start(date):
        if zone is None:
            return calendar.timegm(date.timetuple()) * 1000
        for h in range(24):   # the first local hour of the day that exists
            t = datetime.datetime(date.year, date.month, date.day, h, tzinfo=zone)
            back = t.astimezone(datetime.timezone.utc).astimezone(zone)
            if back.replace(tzinfo=None) == t.replace(tzinfo=None):
                return int(t.timestamp() * 1000)
        raise ValueError(date)

    ends = sorted({end for _, end, _, _ in counted})
    with open(os.path.join(a.out, 'today.jsonl'), 'w') as f:
        for e in ends:
            d = local_date(e - 1)
            start = day_start(d)
            inside = [(ts, host) for ts, _, host, _ in counted if start <= ts < e]
            f.write(json.dumps({'day': d.isoformat(), 'window_end_ms': e, 'pv': len(inside), 'uv': len({h for _, h in inside})}, separators=(',', ':')) + '\n')
    with open(os.path.join(a.out, 'dead_letter.jsonl'), 'w') as f:
        for d in dead:
            f.write(json.dumps(d) + '\n')
    print('counted=%d malformed=%d late=%d' % (len(counted), sum(d['reason'] == 'malformed' for d in dead), sum(d['reason'] == 'late' for d in dead)), file=sys.stderr)


def generate(a):
    rnd = random.Random(a.seed)
    hosts = ['%d.%d.%d.%d' % (rnd.choice([1, 2, 5, 8, 31, 41, 58, 77, 91, 101, 103, 121, 151, 177, 186, 200, 203, 212]), rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255)) for _ in range(150)]
    hosts += ['2001:%x:%x::%x' % (rnd.choice([0x4860, 0x67c, 0x41d0, 0xdb8, 0x250]), rnd.randrange(65536), rnd.randrange(65536)) for _ in range(30)]
    hosts += ['::ffff:%d.%d.%d.%d' % (rnd.choice([8, 81, 193]), rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)) for _ in range(10)]
    hosts += ['host-%d.example.net' % i for i in range(30)] + ['10.0.0.%d:8080' % i for i in range(3)]
    paths = ['/', '/index.html', '/a', '/a-b', '/a!', '/caf\u00e9', '/img/%d.png', '/search?q=%d', '?q=1', '*', 'http://h.example/x?y', '/a#frag?x', '/p,q', '/"quoted"']
    t0 = 1_713_744_000 + rnd.randrange(0, 86_400) if a.start is None else a.start   # some day of 2024 (UTC)
    lines = []
    for n in range(a.lines):
        server = n % a.servers
        t = t0 + n * a.span // a.lines + rnd.randrange(0, 3)
        t -= server * a.lag_s
        zone = rnd.choice([0, 0, 0, 60, -300, 330, 1200, -1200])
        lt = datetime.datetime.fromtimestamp(t, datetime.timezone.utc) + datetime.timedelta(minutes=zone)
        sign = '+' if zone >= 0 else '-'
        stamp = lt.strftime('%d/') + list(MONTHS)[lt.month - 1] + lt.strftime('/%Y:%H:%M:%S ') + '%s%02d%02d' % (sign, abs(zone) // 60, abs(zone) % 60)
        p = rnd.choice(paths)
        if '%d' in p:
            p = p % rnd.randrange(40)
        method = rnd.choice(['GET', 'GET', 'GET', 'POST', 'HEAD'])
        line = '%s - - [%s] "%s %s HTTP/1.1" %d %s' % (rnd.choice(hosts), stamp, method, p, rnd.choice([200, 200, 304, 404, 500]), rnd.choice(['-', str(rnd.randrange(100000))]))
        if rnd.random() < 0.7:
            line += ' "http://ref.example/" "Mozilla/5.0 (X11) \\"quoted\\""'
        lines.append((server, line.encode()))
    if a.dirty:
        bad = [b'', b'free text', b'1.2.3.4 - - [31/Sep/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 1', b'1.2.3.4 - - [01/Jan/2024:10:00:60 +0000] "GET / HTTP/1.1" 200 1',
               b'1.2.3.4 - - [01/Jan/2024:24:00:00 +0000] "GET / HTTP/1.1" 200 1', b'1.2.3.4 - - [01/Jan/2024:10:00:00 +2400] "GET / HTTP/1.1" 200 1', b'1.2.3.4 - - [01/Jan/2024:10:00:00] "GET / HTTP/1.1" 200 1',
               b'1.2.3.4 - - [01/jan/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 1', b'1.2.3.4 - - [01/Jan/2024:10:00:00 +0000] "-" 400 0', b'1.2.3.4 - - [01/Jan/2024:10:00:00 +0000] "GET /" 200 1',
               b'1.2.3.4 - - [01/Jan/2024:10:00:00 +0000] "\\x16\\x03\\x01" 400 0', b'1.2.3.4 - - [01/Jan/2024:10:00:00 +0000] "GET / HTTP/1.1" 20 1', b'1.2.3.4 - - [01/Jan/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 x',
               b'a b c d [01/Jan/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 1', b'\xff\xfe - - [01/Jan/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 1', b'1.2.3.4 - - [29/Feb/2023:10:00:00 +0000] "GET / HTTP/1.1" 200 1']
        for k in range(max(1, a.lines // 25)):
            i = rnd.randrange(len(lines))
            server, line = lines[i]
            r = rnd.random()
            if r < 0.5:
                lines.insert(i, (server, rnd.choice(bad)))
            elif r < 0.7:
                lines[i] = (server, line + b'\r')
            elif r < 0.85:
                lines[i] = (server, line.replace(b'HTTP/1.1', b'HTTP/1.1\xc3', 1))   # invalid UTF-8 inside the protocol
            else:
                lines[i] = (server, line.replace(b' - - ', b' - \xe9\xff ', 1))
    with open(a.out, 'wb') as f:
        f.write(b'\n'.join(l for _, l in lines))
        if a.final_newline:
            f.write(b'\n')


def replicate(a):
    import hashlib, re
    stamp = re.compile(rb'\[(\d{2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})\]')
    sample = []
    for raw in open(a.sample, 'rb').read().split(b'\n'):
        m = stamp.search(raw)
        p = parse(raw.decode('utf-8', 'replace')) if m else None
        if not m or not isinstance(p, tuple):
            continue
        host, rest = raw.split(b' ', 1)
        sample.append((p[0] // 1000, host, rest, m.start(), m.end()))
    t0 = min(t for t, *_ in sample)
    span = max(t for t, *_ in sample) - t0 + 1
    step = a.minutes_per_copy * 60
    written = 0
    with open(a.out, 'wb', buffering=1 << 20) as f:
        k = 0
        while written < a.lines:
            for i, (t, host, rest, s0, s1) in enumerate(sample):
                if written >= a.lines:
                    break
                when = t0 + k * step + (t - t0) * step // span
                d = hashlib.blake2b(host + b'%d/%d' % (k, i % 6), digest_size=4).digest()
                ip = b'%d.%d.%d.%d' % (d[0] % 223 + 1, d[1], d[2], d[3])
                lt = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
                new_stamp = ('[%02d/%s/%04d:%02d:%02d:%02d +0000]' % (lt.day, list(MONTHS)[lt.month - 1], lt.year, lt.hour, lt.minute, lt.second)).encode()
                # rest starts after "host "; the stamp offsets are of the whole line
                off = len(host) + 1
                body = rest[:s0 - off] + new_stamp + rest[s1 - off:]
                q = body.find(b'"') + 1
                sp = body.find(b' ', q) + 1           # after the method
                body = body[:sp] + b'/v%d' % (k % 150) + body[sp:]
                f.write(ip + b' ' + body + b'\n')
                written += 1
            k += 1
    print('lines=%d copies=%d' % (written, k), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('reference')
    r.add_argument('out')
    r.add_argument('logs', nargs='+')
    r.add_argument('--window-ms', type=int, default=60000)
    r.add_argument('--delay-ms', type=int, default=5000)
    r.add_argument('--timezone')
    r.add_argument('--geoip', action='append')
    rp = sub.add_parser('replicate')
    rp.add_argument('sample')
    rp.add_argument('out')
    rp.add_argument('--lines', type=int, required=True)
    rp.add_argument('--minutes-per-copy', type=int, default=1)
    g = sub.add_parser('generate')
    g.add_argument('out')
    g.add_argument('--seed', type=int, required=True)
    g.add_argument('--lines', type=int, required=True)
    g.add_argument('--servers', type=int, default=2)
    g.add_argument('--lag-s', type=int, default=7)
    g.add_argument('--span', type=int, default=3600, help='seconds the log covers')
    g.add_argument('--start', type=int, help='first second (UTC epoch)')
    g.add_argument('--dirty', action='store_true')
    g.add_argument('--final-newline', action='store_true')
    a = ap.parse_args()
    {'reference': reference, 'generate': generate, 'replicate': replicate}[a.cmd](a)


if __name__ == '__main__':
    main()
