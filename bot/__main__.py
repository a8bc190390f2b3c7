"""Sportello's command line: `python -m bot COMMAND`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bot.settings import PROFILES


def _cmd_migrate(args: argparse.Namespace) -> int:
    from bot.persistence.db import migrate

    migrate()
    print("database migrated")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from bot.crm.importer import ImportError_, import_file
    from bot.persistence.db import migrate

    migrate()
    try:
        report = import_file(Path(args.path))
    except ImportError_ as exc:
        print(f"{args.path}: invalid, nothing was imported. {len(exc.problems)} problem(s):",
              file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"imported {report.customers} customers, {report.supplies} supplies, "
          f"{report.bills} bills, {report.tickets} tickets, {report.outages} outages, "
          f"{report.interactions_added} new interactions")
    return 0


def _cmd_seed(args: argparse.Namespace) -> int:
    from bot.crm.seed import DEMO, is_empty, seed_demo
    from bot.persistence.db import migrate

    migrate()
    if args.if_empty and not is_empty():
        print("database already holds customers; demo data not loaded")
        return 0
    from bot.desk.demo import DEMO_USERS, seed_desk_users

    n = seed_demo()
    print(f"demo data loaded: {n} customers")
    for code, what in DEMO.items():
        print(f"  {code}  {what}")
    seed_desk_users()
    print("demo desk users (username / password / role / skills):")
    for username, password, role, _, skills, languages in DEMO_USERS:
        print(f"  {username} / {password} / {role} / {','.join(skills) or '-'}"
              f" ({','.join(languages)})")
    return 0


def _cmd_add_user(args: argparse.Namespace) -> int:
    import getpass
    import os

    from bot.desk.auth import UserError, add_user
    from bot.persistence.db import migrate

    migrate()
    password = os.environ.get("DESK_NEW_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("password: ")
            if password != getpass.getpass("again: "):
                print("the passwords differ", file=sys.stderr)
                return 1
    try:
        add_user(args.username, password, args.role, args.name,
                 [s for s in args.skills.split(",") if s],
                 [x for x in args.languages.split(",") if x],
                 replace=args.replace)
    except UserError as exc:
        print(f"user not created: {exc}", file=sys.stderr)
        return 1
    print(f"user {args.username} ({args.role}) saved")
    return 0


def _cmd_desk(args: argparse.Namespace) -> int:
    from bot.desk.app import serve

    serve(port=args.port)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from bot.log_worker import serve

    serve()
    return 0


def _cmd_worker_alive(args: argparse.Namespace) -> int:
    from bot.log_worker import alive

    return 0 if alive() else 1


def _cmd_rasa(args: argparse.Namespace) -> int:
    """The Rasa server as the launcher starts it, in place of this process (a container's
    command): the trained model of this checkout, never trained here."""
    from bot.launcher import rasa_command
    from bot.runner import model_path

    model = model_path()
    if not model.exists():
        print(f"no trained model {model}: run `python -m bot train` first (the container "
              "image trains it when it is built)", file=sys.stderr)
        return 1
    command = rasa_command(model)
    os.execv(command[0], command)
    return 1  # not reached


def _cmd_actions(args: argparse.Namespace) -> int:
    from bot.action_server import serve

    serve(port=args.port)
    return 0


def _cmd_secret(args: argparse.Namespace) -> int:
    from bot.keys import SECRETS, generate

    for name in SECRETS:
        print(f"{name}={generate()}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from bot.production import problems

    found = problems()
    for line in found:
        print(f"- {line}")
    print("ready for production" if not found else f"{len(found)} problem(s)")
    return 1 if found else 0


def _cmd_site(args: argparse.Namespace) -> int:
    from bot.site.app import serve

    serve(port=args.port)
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    from bot.tokens import make_customer_token

    print(make_customer_token(args.customer_code, args.minutes))
    return 0


def _cmd_outbox(args: argparse.Namespace) -> int:
    from bot.settings import get_settings

    if get_settings().profile == "production":
        print("python -m bot outbox only works in the embedded profile: in production one-time "
              "codes are sent to the customers by e-mail (SMTP) and SMS, and never stored",
              file=sys.stderr)
        return 2
    from sqlalchemy import select

    from bot.persistence import tables
    from bot.persistence.db import migrate, session_scope

    migrate()
    with session_scope() as s:
        rows = s.execute(select(tables.OutboxMessage).order_by(tables.OutboxMessage.id.desc())
                         .limit(args.last)).scalars().all()
    if not rows:
        print("outbox: nothing sent yet")
    for row in reversed(rows):  # the outbox table: OTP_DELIVERY=outbox keeps the whole message
        print(f"{row.created_at.isoformat(timespec='seconds')}\t{row.medium}\t"
              f"{row.destination}\t{row.body}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from bot.runner import ensure_model

    print(ensure_model(force=args.force))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    if args.profile:
        os.environ["SPORTELLO_PROFILE"] = args.profile
    from bot.runner import run
    from bot.settings import reset_settings

    reset_settings()
    return run(with_shell=False, replicas=args.replicas)


def _cmd_shell(args: argparse.Namespace) -> int:
    from bot.runner import run

    return run(with_shell=True)


def _cmd_card(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from bot.crm.card import read_identity_card

    card = read_identity_card(args.customer_code)
    if card is None:
        print(f"{args.customer_code}: no such customer", file=sys.stderr)
        return 1
    print(json.dumps(asdict(card), default=str, indent=2, ensure_ascii=False))
    return 0


def _cmd_sync_log(args: argparse.Namespace) -> int:
    from bot.analytics import ingest
    from bot.persistence.db import migrate

    migrate()
    events = ingest.sync_all()
    ended = ingest.sweep()
    print(f"conversation log: {events} new events read, {ended} idle conversations ended")
    return 0


def _cmd_export_annotations(args: argparse.Namespace) -> int:
    from bot.analytics.annotations import export_files
    from bot.language import LANGUAGES

    languages = [args.language] if args.language else list(LANGUAGES)
    for path, counts in export_files(Path(args.out), languages):
        total = sum(counts.values())
        print(f"{path}: {total} examples, {len(counts)} intents")
        for intent, n in counts.items():
            print(f"  {intent}: {n}")
    return 0


def _cmd_erase_customer(args: argparse.Namespace) -> int:
    from bot.analytics.lifecycle import erase_customer
    from bot.persistence.db import migrate

    migrate()
    result = erase_customer(args.customer_code, reference=args.reference or "",
                            requested_by=args.by or "")
    if not result.found:
        print(f"{args.customer_code}: no such customer, and nothing of that code in the "
              f"conversation log or in Rasa's stores; nothing erased", file=sys.stderr)
        return 1
    _print_deleted(f"erased {args.customer_code}: {result.senders} sender id(s), ", result,
                   "customer-history", "counts only")
    return 0


def _cmd_purge(args: argparse.Namespace) -> int:
    from bot.analytics.lifecycle import purge
    from bot.persistence.db import migrate
    from bot.settings import get_settings

    days = args.days if args.days is not None else get_settings().retention_days
    if days < 1:
        if args.days is None:
            print("retention is off (RETENTION_DAYS=0): nothing purged")
            return 0
        print(f"--days {days}: refusing, that would delete every conversation; give at least "
              f"1 day (RETENTION_DAYS sets the default)", file=sys.stderr)
        return 2
    migrate()
    result = purge(days, requested_by=args.by or "")
    _print_deleted(f"purged what is older than {days} days (before "
                   f"{result.cutoff.isoformat(timespec='seconds')}): ", result, "other",
                   "kind retention")
    return 0


def _print_deleted(opening: str, result: Any, history_label: str, record_note: str) -> None:
    """What an erasure or a purge deleted, store by store, and the record it left."""
    print(f"{opening}{result.conversations} conversation(s) from the log, "
          f"{result.tracker_events} tracker-store event(s), "
          f"{result.broker_events} event-stream row(s), "
          f"{result.history_rows} {history_label} row(s)")
    for table, n in result.history.items():
        if n:
            print(f"  {table}: {n}")
    print(f"erasure record #{result.record_id} written ({record_note})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the database schema").set_defaults(
        fn=_cmd_migrate)
    p = sub.add_parser("import-data", help="import customer history (customer-data.md format)")
    p.add_argument("path")
    p.set_defaults(fn=_cmd_import)
    p = sub.add_parser("seed-demo", help="load the deterministic demo customers")
    p.add_argument("--if-empty", action="store_true", help="only when no customer exists")
    p.set_defaults(fn=_cmd_seed)
    p = sub.add_parser("token", help="print a customer token (as the company's site signs it)")
    p.add_argument("customer_code")
    p.add_argument("--minutes", type=int, default=60)
    p.set_defaults(fn=_cmd_token)
    p = sub.add_parser("outbox", help="show the last e-mails/SMS the product 'sent' (embedded "
                                     "profile: the outbox table)")
    p.add_argument("--last", type=int, default=10)
    p.set_defaults(fn=_cmd_outbox)
    p = sub.add_parser("card", help="print a customer's identity card")
    p.add_argument("customer_code")
    p.set_defaults(fn=_cmd_card)
    p = sub.add_parser("add-user", help="create a desk user (password from the prompt, stdin "
                                        "or DESK_NEW_PASSWORD)")
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=["agent", "cx_lead", "admin"])
    p.add_argument("--name", help="display name (default: the username)")
    p.add_argument("--skills", default="", help="agents: billing,technical,commercial")
    p.add_argument("--languages", default="it", help="e.g. it,en")
    p.add_argument("--replace", action="store_true", help="update an existing user")
    p.set_defaults(fn=_cmd_add_user)
    p = sub.add_parser("desk", help="run the desk web app alone")
    p.add_argument("--port", type=int)
    p.set_defaults(fn=_cmd_desk)
    sub.add_parser("worker", help="run the log worker alone (builds the review console's "
                                  "conversation log from Rasa's event stream)").set_defaults(
        fn=_cmd_worker)
    sub.add_parser("worker-alive", help="exit 0 if the log worker's loop went round in the last "
                                        "two minutes (a liveness probe)").set_defaults(
        fn=_cmd_worker_alive)
    sub.add_parser("rasa", help="run the Rasa server alone with this checkout's trained model "
                                "(as the launcher does)").set_defaults(fn=_cmd_rasa)
    p = sub.add_parser("actions", help="run the action server alone (private, token required)")
    p.add_argument("--port", type=int)
    p.set_defaults(fn=_cmd_actions)
    sub.add_parser("secret", help="print fresh random values for every secret (for .env)"
                   ).set_defaults(fn=_cmd_secret)
    sub.add_parser("check-production", help="list what stops this configuration from "
                   "starting in production").set_defaults(fn=_cmd_check)
    p = sub.add_parser("site", help="run the demo site (the page with the chat widget) alone")
    p.add_argument("--port", type=int)
    p.set_defaults(fn=_cmd_site)
    p = sub.add_parser("train", help="train the model if the data or config changed")
    p.add_argument("--force", action="store_true")
    p.set_defaults(fn=_cmd_train)
    p = sub.add_parser("run", help="migrate, seed, train if needed, start the action server, "
                                   "Rasa, the desk, the site and the log worker")
    p.add_argument("--profile", choices=PROFILES,
                   help="instead of SPORTELLO_PROFILE")
    p.add_argument("--replicas", type=int, default=0,
                   help="production: this many Rasa servers and action servers behind HAProxy")
    p.set_defaults(fn=_cmd_run)
    sub.add_parser("shell", help="like run, then talk to the bot in the terminal").set_defaults(
        fn=_cmd_shell)
    sub.add_parser("sync-log", help="bring the review console's conversation log up to date "
                                    "(the log worker does it continuously)").set_defaults(
        fn=_cmd_sync_log)
    p = sub.add_parser("export-annotations", help="write the annotated customer messages as "
                                                  "Rasa NLU training data, one file per language")
    p.add_argument("--out", default="annotations", help="folder (default: annotations/)")
    p.add_argument("--language", choices=["it", "en"], help="only this language")
    p.set_defaults(fn=_cmd_export_annotations)
    p = sub.add_parser("erase-customer", help="erase a customer's history, conversations and "
                                              "Rasa events (right to erasure)")
    p.add_argument("customer_code")
    p.add_argument("--reference", help="the request's reference, e.g. its ticket (no names)")
    p.add_argument("--by", help="who asked for it (default: the system user)")
    p.set_defaults(fn=_cmd_erase_customer)
    p = sub.add_parser("purge", help="delete conversations and events older than the retention "
                                     "period")
    p.add_argument("--days", type=int, help="default: RETENTION_DAYS (365)")
    p.add_argument("--by", help="who runs it (default: the system user)")
    p.set_defaults(fn=_cmd_purge)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
