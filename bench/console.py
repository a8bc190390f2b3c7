"""Review console benchmark: the console's queries on a large conversation log.

`python -m bench.console [--conversations 100000] [--runs 15] [--backends sqlite,postgresql]`
generates N synthetic conversations (`bench.synthetic`, deterministic) into a fresh,
migrated database on each backend, then times, in this process, what the console runs:
`bot.analytics.queries.list_conversations` (first page unfiltered, filter combinations, sorts,
a deep page, full-text searches) and `bot.analytics.kpis.compute` / `compare` (the dashboard),
each `runs` times after one warm-up run (p50 / p95 / max). Last, once each, on the same data:
`erase-customer` of one customer with a few conversations and `purge` of a third of the log
(`bot.analytics.lifecycle`), because both rewrite the full-text index.

Results go to bench/results.json (key "console") and to their own section of bench/RESULTS.md
(the other sections are left as they are).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from bench.common import (
    PG_SERVER,
    RAW,
    ROOT,
    create_pg_databases,
    drop_pg_databases,
    machine,
    write_section,
)

TITLE = "## Review console queries"


def _stats(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    if len(ms) >= 2:
        q = statistics.quantiles(ms, n=100, method="inclusive")
        p50, p95 = q[49], q[94]
    else:
        p50 = p95 = ms[0]
    return {"runs": len(ms), "p50_ms": round(p50, 1), "p95_ms": round(p95, 1),
            "max_ms": round(ms[-1], 1)}


def _timed(fn, runs: int) -> tuple[dict, object]:
    result = fn()  # warm-up (and the result, for the row counts)
    seconds = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t)
    return _stats(seconds), result


def _cases(end: date, code: str) -> list[tuple[str, dict, str, int]]:
    """(name, Filters fields, sort, page); 50 rows a page, as the console shows."""
    week, month = end - timedelta(days=7), end - timedelta(days=30)
    return [
        ("first page, no filter", {}, "-started_at", 1),
        ("channel = whatsapp", {"channel": "whatsapp"}, "-started_at", 1),
        ("language = en, outcome = handover", {"language": "en", "outcome": "handover"},
         "-started_at", 1),
        ("intent = check_bill", {"intent": "check_bill"}, "-started_at", 1),
        ("stage = feedback, csat = 1", {"stage": "feedback", "csat": 1}, "-started_at", 1),
        ("tag = missing skill", {"tag": "missing skill"}, "-started_at", 1),
        ("last 7 days", {"date_from": week, "date_to": end}, "-started_at", 1),
        ("last 30 days, persona = senior, not reviewed",
         {"date_from": month, "date_to": end, "persona": "senior", "reviewed": False},
         "-started_at", 1),
        ("customer_code = one customer", {"customer_code": code}, "-started_at", 1),
        ("sort by turns (desc)", {}, "-turns", 1),
        ("sort by CSAT (asc, unrated last)", {}, "csat", 1),
        ("sort by channel", {}, "channel", 1),
        ("page 1000 (offset 49,950)", {}, "-started_at", 1000),
        ("page 1000, sort by turns", {}, "-turns", 1000),
        ("search: common word (bolletta)", {"q": "bolletta"}, "-started_at", 1),
        ("search: two words (bolletta alta)", {"q": "bolletta alta"}, "-started_at", 1),
        ("search: rare word (fotovoltaico)", {"q": "fotovoltaico"}, "-started_at", 1),
        ("search: no match (zanzibar)", {"q": "zanzibar"}, "-started_at", 1),
        ("search bolletta + channel telegram + it",
         {"q": "bolletta", "channel": "telegram", "language": "it"}, "-started_at", 1),
    ]


def _backend(name: str, conversations: int, runs: int, work: Path) -> dict:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from bench import synthetic
    from bot.analytics import queries
    from bot.analytics.models import Conversation
    from bot.persistence import db as crm_db
    from bot.settings import reset_settings

    pg_name = None
    if name == "sqlite":
        url = f"sqlite:///{work / 'console.db'}"
    else:
        pg_name = create_pg_databases(1)[0]
        url = f"{PG_SERVER}/{pg_name}"
    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "SPORTELLO_VAR_DIR",
                                             "TRACKER_DATABASE_URL", "EVENTS_DATABASE_URL")}
    os.environ.update({"DATABASE_URL": url, "SPORTELLO_VAR_DIR": str(work / f"var-{name}"),
                       "TRACKER_DATABASE_URL": f"sqlite:///{work / f'tracker-{name}.db'}",
                       "EVENTS_DATABASE_URL": f"sqlite:///{work / f'events-{name}.db'}"})
    reset_settings()
    crm_db.get_engine.cache_clear()
    out: dict = {}
    try:
        crm_db.migrate(url)
        engine = crm_db.get_engine(url)
        end = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        t = time.perf_counter()
        out["generated"] = synthetic.generate(engine, conversations, end=end)
        out["generate_seconds"] = round(time.perf_counter() - t, 1)
        if name == "sqlite":
            out["database_mib"] = round((work / "console.db").stat().st_size / 2**20)
        else:
            with engine.connect() as c:
                out["database_mib"] = round(c.exec_driver_sql(
                    "SELECT pg_database_size(current_database())").scalar_one() / 2**20)
        with Session(engine, future=True) as db:
            code = db.execute(select(Conversation.customer_code, func.count())
                              .where(Conversation.customer_code.isnot(None))
                              .group_by(Conversation.customer_code)
                              .order_by(func.count().desc()).limit(1)).first()[0]
            today = end.date()
            out["list"] = []
            for label, fields, sort, page in _cases(today, code):
                filters = queries.Filters(**fields)
                stats, result = _timed(lambda: queries.list_conversations(
                    db, filters, sort, page, 50), runs)
                out["list"].append({"query": label, "matching": result.total,
                                    "rows": len(result.rows), **stats})
                print(f"  {name}: {label}: {stats['p50_ms']} ms", flush=True)
            out["kpis"] = []
            try:
                from bot.analytics import kpis
            except ImportError:
                kpis = None
            if kpis is not None:
                last = today - timedelta(days=1)
                for label, call in (
                        ("compute, 30 days", lambda: kpis.compute(db, last - timedelta(days=29),
                                                                  last)),
                        ("compute, 90 days", lambda: kpis.compute(db, last - timedelta(days=89),
                                                                  last)),
                        ("compute, 90 days by channel",
                         lambda: kpis.compute(db, last - timedelta(days=89), last, by="channel")),
                        ("compute, 90 days, language = en, by stage",
                         lambda: kpis.compute(db, last - timedelta(days=89), last,
                                              filters={"language": "en"}, by="stage")),
                        ("compare, 30 days with the 30 before",
                         lambda: kpis.compare(db, last - timedelta(days=29), last))):
                    stats, _ = _timed(call, runs)
                    out["kpis"].append({"query": label, **stats})
                    print(f"  {name}: kpis {label}: {stats['p50_ms']} ms", flush=True)
        out["lifecycle"] = _lifecycle(code, end)
    finally:
        crm_db.get_engine.cache_clear()
        from bot.analytics import lifecycle

        lifecycle._engine.cache_clear()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_settings()
        if pg_name:
            drop_pg_databases([pg_name])
    return out


def _lifecycle(code: str, end: datetime) -> dict:
    from bot.analytics import lifecycle

    t = time.perf_counter()
    erased = lifecycle.erase_customer(code, reference="bench", requested_by="bench")
    erase_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    purged = lifecycle.purge(60, requested_by="bench", now=end)  # the same cutoff on both
    purge_ms = (time.perf_counter() - t) * 1000
    return {"erase_customer": {"conversations": erased.conversations, "ms": round(erase_ms)},
            "purge_60_days": {"conversations": purged.conversations, "ms": round(purge_ms)}}


def section(raw: dict) -> list[str]:
    """The Markdown section of the console benchmark (none if it never ran)."""
    r = raw.get("console")
    if not r:
        return []
    backends = [b for b in ("sqlite", "postgresql") if b in r["backends"]]
    lines = [f"{TITLE} (run {r['date']})", "",
             f"Machine: {r['machine']}. {r['conversations']:,} synthetic conversations "
             "(`bench.synthetic`, seed fixed: 90 days, Italian and English, every "
             "channel, persona and self-care intent, 4-12 transcript lines each) generated into "
             "a fresh migrated database per backend; PostgreSQL 127.0.0.1 on the same machine. "
             "Each query run once to warm up, then "
             f"{r['runs']} times in a row in one process (`python -m bench.console`); "
             "`list_conversations` returns 50 rows and the total, as the console's list does."
             + (f" {r['note']}" if r.get("note") else ""), ""]
    for b in backends:
        g = r["backends"][b]
        lines.append(f"- {b}: generated {g['generated']['conversations']:,} conversations, "
                     f"{g['generated']['conversation_messages']:,} transcript lines in "
                     f"{g['generate_seconds']} s; database {g['database_mib']} MiB"
                     + (f"; load average {g['load'][0]} before, {g['load'][1]} after"
                        if g.get("load") else "") + ".")
    lines += ["", "| query | matching | " + " | ".join(
        f"{b} p50 / p95 / max ms" for b in backends) + " |",
        "|---|---|" + "---|" * len(backends)]
    first = r["backends"][backends[0]]
    for i, row in enumerate(first["list"]):
        cells = []
        for b in backends:
            x = r["backends"][b]["list"][i]
            cells.append(f"{x['p50_ms']} / {x['p95_ms']} / {x['max_ms']}")
        lines.append(f"| {row['query']} | {row['matching']:,} | " + " | ".join(cells) + " |")
    if first.get("kpis"):
        lines += ["", "| KPI dashboard (`bot.analytics.kpis`) | " + " | ".join(
            f"{b} p50 / p95 / max ms" for b in backends) + " |",
            "|---|" + "---|" * len(backends)]
        for i, row in enumerate(first["kpis"]):
            cells = [f"{r['backends'][b]['kpis'][i]['p50_ms']} / "
                     f"{r['backends'][b]['kpis'][i]['p95_ms']} / "
                     f"{r['backends'][b]['kpis'][i]['max_ms']}" for b in backends]
            lines.append(f"| {row['query']} | " + " | ".join(cells) + " |")
    lines += ["", "Erasure and retention on the same data, once each (they delete through the "
              "full-text index, and on SQLite optimise it so no erased word stays in it):", ""]
    for b in backends:
        lc = r["backends"][b]["lifecycle"]
        lines.append(f"- {b}: `erase-customer` of a customer with "
                     f"{lc['erase_customer']['conversations']} conversations "
                     f"{lc['erase_customer']['ms']:,} ms; `purge --days 60` "
                     f"({lc['purge_60_days']['conversations']:,} conversations) "
                     f"{lc['purge_60_days']['ms']:,} ms.")
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--note", default="", help="a sentence for RESULTS.md (e.g. the load)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    result = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": machine(), "conversations": args.conversations, "runs": args.runs,
              "note": args.note, "backends": {}}
    with tempfile.TemporaryDirectory(prefix="sportello-console-") as work:
        for backend in args.backends.split(","):
            print(f"console benchmark: {backend}", flush=True)
            load = os.getloadavg()[0]
            result["backends"][backend] = _backend(backend, args.conversations, args.runs,
                                                   Path(work))
            result["backends"][backend]["load"] = [round(load, 1),
                                                   round(os.getloadavg()[0], 1)]
    raw = json.loads(RAW.read_text()) if RAW.exists() else {}
    raw["console"] = result
    print("\n".join(section(raw)))
    if not args.no_write:
        raw.setdefault("dates", {})["console"] = result["date"]
        RAW.write_text(json.dumps(raw, indent=2))
        write_section(TITLE, section(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
