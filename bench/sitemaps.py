"""Benchmark: SQLite rows into gzip sitemaps, the real generation code against an ElementTree baseline.

Usage: .venv/bin/python bench/sitemaps.py [--rows 1000000 4000000]
Each measurement runs in its own subprocess so that ru_maxrss is that run's peak. The
service may start worker processes: CPU counts them too, and peak RSS is the run's own
peak plus the largest worker's (an upper bound of the memory in use at once).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Imported in the functions that use them: worker processes are started with 'spawn',
# which imports this script again, and should not pay for SQLAlchemy.
GZIP_LEVEL = 1  # as service.sitemaps.writer.GZIP_LEVEL; checked in run_fast

OUT = ROOT / "bench" / "out"
DB = OUT / "sitemaps-bench.db"
MAX_ROWS = 4_000_000
BASE = "https://sitemaps.example.test/sitemaps"
NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


def query(rows: int) -> str:
    return f"SELECT loc, lastmod FROM items WHERE id <= {int(rows)} ORDER BY id"


def build_db() -> None:
    if DB.exists():
        return
    OUT.mkdir(parents=True, exist_ok=True)
    partial = DB.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    with sqlite3.connect(partial) as db:
        db.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, loc TEXT NOT NULL, lastmod TEXT NOT NULL)"
        )
        db.executemany(
            "INSERT INTO items (id, loc, lastmod) VALUES (?, ?, ?)",
            (
                (
                    i,
                    f"https://shop.example.test/items/{i:08d}?ref=feed&page={i % 97}",
                    f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i % 59:02d}+00:00",
                )
                for i in range(1, MAX_ROWS + 1)
            ),
        )
    partial.rename(DB)


def run_fast(rows: int, out: Path) -> dict[str, float]:
    from service.sitemaps import writer
    from service.sitemaps.sql_source import sql_batches
    from service.sitemaps.writer import write_sitemaps

    assert writer.GZIP_LEVEL == GZIP_LEVEL
    generation = write_sitemaps(sql_batches(f"sqlite:///{DB}", query(rows)), out, BASE)
    return {
        "urls": generation.urls,
        "files": len(generation.files),
        "bytes": sum(f.size for f in generation.files),
    }


def run_baseline(rows: int, out: Path) -> dict[str, float]:
    """Each 50,000-URL page built as a list and rendered with ElementTree, then gzipped."""
    out.mkdir(parents=True, exist_ok=True)
    cursor = sqlite3.connect(DB).execute(query(rows))
    files, urls, size = 0, 0, 0
    while page := cursor.fetchmany(50_000):
        urlset = ET.Element("urlset", xmlns=NS)
        for loc, lastmod in page:
            url = ET.SubElement(urlset, "url")
            ET.SubElement(url, "loc").text = loc
            ET.SubElement(url, "lastmod").text = lastmod
        data = ET.tostring(urlset, encoding="utf-8", xml_declaration=True)
        files += 1
        urls += len(page)
        path = out / f"sitemap-{files:05d}.xml.gz"
        path.write_bytes(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))
        size += path.stat().st_size
    index = ET.Element("sitemapindex", xmlns=NS)
    for number in range(1, files + 1):
        ET.SubElement(
            ET.SubElement(index, "sitemap"), "loc"
        ).text = f"{BASE}/sitemap-{number:05d}.xml.gz"
    (out / "sitemap.xml").write_bytes(ET.tostring(index, encoding="utf-8", xml_declaration=True))
    return {"urls": urls, "files": files + 1, "bytes": size}


def child(kind: str, rows: int) -> None:
    if kind == "fast":  # imported before the clock starts, like the baseline's modules
        import service.sitemaps.sql_source
        import service.sitemaps.writer  # noqa: F401
    out = OUT / f"{kind}-{rows}"
    started = time.perf_counter()
    figures = (run_fast if kind == "fast" else run_baseline)(rows, out)
    wall = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures.update(
        wall=wall,
        cpu=own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime,
        rss_mb=own.ru_maxrss / 1024,
    )
    print(json.dumps(figures))


def _tree_pss_kb(pid: int) -> int:
    """Proportional set size of a process and all its descendants, from /proc; 0 once gone.

    PSS splits shared pages between the processes that map them, so the sum is the
    memory in use at once (RSS would count a just-spawned worker's parent image twice).
    """
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0
    pss = next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)
    return pss + sum(_tree_pss_kb(int(child)) for child in children)


def measure(kind: str, rows: int) -> dict[str, float]:
    """One run in a fresh process, with the memory of all its processes sampled every 50 ms.

    The run's own ru_maxrss is exact for its main process; a worker's ru_maxrss would
    also count the parent image it was spawned from before exec, so the memory of the
    whole tree at once is sampled from /proc instead.
    """
    with subprocess.Popen(
        [sys.executable, __file__, "--child", kind, str(rows)], stdout=subprocess.PIPE, text=True
    ) as process:
        peak = 0
        while process.poll() is None:
            peak = max(peak, _tree_pss_kb(process.pid))
            time.sleep(0.05)
        output = process.stdout.read() if process.stdout else ""
    if process.returncode:
        raise SystemExit(f"{kind} run failed with exit code {process.returncode}")
    figures = json.loads(output.strip().splitlines()[-1])
    figures["tree_mb"] = peak / 1024
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, MAX_ROWS])
    parser.add_argument("--child", nargs=2, metavar=("KIND", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    build_db()
    print(f"gzip level {GZIP_LEVEL} for both; load average {os.getloadavg()[0]:.2f}")
    print("wall and CPU (user+sys, workers included) in s; peak RSS of the main process,")
    print("and peak PSS of all its processes at once (sampled every 50 ms), in MB")
    print(
        f"{'rows':>10} {'impl':>9} {'wall s':>7} {'cpu s':>6} {'URLs/s':>10} {'RSS MB':>7} "
        f"{'all PSS':>7} {'files':>6} {'gz MB':>6}"
    )
    for rows in args.rows:
        fast = measure("fast", rows)
        base = measure("baseline", rows)
        for name, fig in (("service", fast), ("baseline", base)):
            print(
                f"{rows:>10,} {name:>9} {fig['wall']:>7.2f} {fig['cpu']:>6.2f} {rows / fig['wall']:>10,.0f} "
                f"{fig['rss_mb']:>7.1f} {fig['tree_mb']:>7.1f} {fig['files']:>6.0f} {fig['bytes'] / 1e6:>6.1f}"
            )
        print(
            f"{rows:>10,} speed-up {base['wall'] / fast['wall']:.1f}x wall, "
            f"{base['cpu'] / fast['cpu']:.1f}x CPU; load average {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
