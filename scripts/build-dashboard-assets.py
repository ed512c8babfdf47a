#!/usr/bin/env python3
"""Builds the dashboard's vendored assets in src/dashboard/assets/ (committed; run again only to update them).

Inputs, from the package registries (nothing else is fetched):
  - npm echarts@6.1.0 (Apache-2.0): dist/echarts.min.js, copied as it is, with its LICENSE and NOTICE;
  - npm world-atlas@2.0.2 (ISC; Natural Earth, public domain): countries-110m.json, a TopoJSON whose ids are
    ISO 3166 numeric codes, turned into GeoJSON with an `iso` property (alpha-2) from npm i18n-iso-countries (MIT,
    codes.json);
  - PyPI geopandas==0.14.4 (its wheel bundles nybb_16a.zip: NYC's borough boundaries, NYC Open Data, in New York
    State Plane Long Island feet, EPSG:2263), read with pyshp, reprojected to WGS84 degrees with pyproj and
    simplified (Douglas-Peucker, 0.0004 degrees, about 40 m).

Usage: scripts/build-dashboard-assets.py WORKDIR   (WORKDIR gets the downloads; needs npm and pip)
"""
import io, json, os, subprocess, sys, zipfile, shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "src", "dashboard", "assets")


def run(*cmd, cwd):
    subprocess.run(cmd, cwd=cwd, check=True)


def dp(points, eps):
    """Douglas-Peucker simplification of a polyline (list of (x, y)), keeping the end points."""
    if len(points) < 3:
        return points
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        (x1, y1), (x2, y2) = points[a], points[b]
        dx, dy = x2 - x1, y2 - y1
        norm = (dx * dx + dy * dy) ** 0.5
        best, index = -1.0, None
        for i in range(a + 1, b):
            x, y = points[i]
            d = abs(dy * (x - x1) - dx * (y - y1)) / norm if norm else ((x - x1) ** 2 + (y - y1) ** 2) ** 0.5
            if d > best:
                best, index = d, i
        if index is not None and best > eps:
            keep[index] = True
            stack += [(a, index), (index, b)]
    return [p for p, k in zip(points, keep) if k]


def ring(points, eps, digits):
    simple = dp(points, eps)
    if len(simple) < 4:
        return None
    return [[round(x, digits), round(y, digits)] for x, y in simple]


def boroughs(work):
    import shapefile  # pyshp
    from pyproj import Transformer

    run(sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", work, "geopandas==0.14.4", cwd=work)
    wheel = next(f for f in os.listdir(work) if f.startswith("geopandas-0.14.4"))
    with zipfile.ZipFile(os.path.join(work, wheel)) as w:
        nybb = zipfile.ZipFile(io.BytesIO(w.read("geopandas/datasets/nybb_16a.zip")))
    names = {n.rsplit("/", 1)[-1]: n for n in nybb.namelist()}
    reader = shapefile.Reader(shp=io.BytesIO(nybb.read(names["nybb.shp"])), dbf=io.BytesIO(nybb.read(names["nybb.dbf"])),
                              shx=io.BytesIO(nybb.read(names["nybb.shx"])))
    to_wgs84 = Transformer.from_crs("EPSG:2263", "EPSG:4326", always_xy=True)
    features = []
    for shape_record in reader.shapeRecords():
        name = shape_record.record["BoroName"]
        shape = shape_record.shape
        parts = list(shape.parts) + [len(shape.points)]
        polygons = []
        for a, b in zip(parts, parts[1:]):
            lon, lat = to_wgs84.transform([p[0] for p in shape.points[a:b]], [p[1] for p in shape.points[a:b]])
            r = ring(list(zip(lon, lat)), 0.0004, 5)
            if r:
                polygons.append([r])  # every part as its own polygon: the boroughs' parts are islands, not holes
        features.append({"type": "Feature", "properties": {"name": name}, "geometry": {"type": "MultiPolygon", "coordinates": polygons}})
    return {"type": "FeatureCollection", "features": features}


def world(node_modules):
    topo = json.load(open(os.path.join(node_modules, "world-atlas", "countries-110m.json")))
    codes = {numeric: alpha2 for alpha2, _, numeric, _ in json.load(open(os.path.join(node_modules, "i18n-iso-countries", "codes.json")))}
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((round(x * sx + tx, 3), round(y * sy + ty, 3)))
        arcs.append(points)

    def line(indexes):
        points = []
        for i in indexes:
            pts = arcs[i] if i >= 0 else arcs[~i][::-1]
            points.extend(pts if not points else pts[1:])
        return [list(p) for p in points]

    features = []
    for g in topo["objects"]["countries"]["geometries"]:
        if g["type"] == "Polygon":
            polygons = [[line(r) for r in g["arcs"]]]
        elif g["type"] == "MultiPolygon":
            polygons = [[line(r) for r in p] for p in g["arcs"]]
        else:
            continue
        iso = codes.get(g.get("id"), "")
        features.append({"type": "Feature", "properties": {"name": g["properties"]["name"], "iso": iso},
                         "geometry": {"type": "MultiPolygon", "coordinates": polygons}})
    return {"type": "FeatureCollection", "features": features}


def main():
    work = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/dashboard-assets")
    os.makedirs(work, exist_ok=True)
    run("npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", work, "echarts@6.1.0", "world-atlas@2.0.2", "i18n-iso-countries@7", cwd=work)
    nm = os.path.join(work, "node_modules")
    os.makedirs(OUT, exist_ok=True)
    shutil.copy(os.path.join(nm, "echarts", "dist", "echarts.min.js"), os.path.join(OUT, "echarts.min.js"))  # gzip'd below
    with open(os.path.join(OUT, "LICENSES.txt"), "w") as f:
        f.write("Third-party assets embedded in the taxiflow binary (built by scripts/build-dashboard-assets.py)\n\n")
        f.write("== echarts.min.js: Apache ECharts 6.1.0, Apache License 2.0 ==\n\n")
        f.write(open(os.path.join(nm, "echarts", "NOTICE")).read() + "\n")
        f.write(open(os.path.join(nm, "echarts", "LICENSE")).read() + "\n")
        f.write("== world.geo.json: world-atlas 2.0.2 (countries-110m), ISC; data from Natural Earth (public domain); "
                "alpha-2 codes from i18n-iso-countries (MIT) ==\n\n")
        f.write(open(os.path.join(nm, "world-atlas", "LICENSE")).read() + "\n")
        f.write(open(os.path.join(nm, "i18n-iso-countries", "LICENSE")).read() + "\n")
        f.write("== nyc.geo.json: NYC borough boundaries (nybb 16a), NYC Department of City Planning, NYC Open Data "
                "(terms of use: https://www.nyc.gov/home/terms-of-use.page), as bundled by geopandas 0.14.4 (BSD-3-Clause); "
                "reprojected from EPSG:2263 to WGS84 and simplified ==\n")
    for name, data in (("world.geo.json", world(nm)), ("nyc.geo.json", boroughs(work))):
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(data, f, separators=(",", ":"))
    # The large assets are committed and embedded gzip'd (served with Content-Encoding: gzip); -n: no name or time.
    for name in ("echarts.min.js", "world.geo.json", "nyc.geo.json"):
        subprocess.run(["gzip", "-9", "-n", "-f", os.path.join(OUT, name)], check=True)
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
