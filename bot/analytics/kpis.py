"""KPIs of the conversation log (`bot.analytics.models`), for the CX lead's dashboard.

Every figure is computed over the conversations with at least one customer message
(`turns > 0`) whose `started_at` falls in the period: Europe/Rome calendar days, both ends
included. Aggregation happens in SQL (GROUP BY, window functions), four to six queries a
period; Python only sums and divides the grouped counts (a few hundred rows at most) and maps
UTC hour buckets to local days, so nothing grows with the number of conversations but the
database's own scan.

Definitions (the outcome of a conversation is `bot.analytics.ingest.outcome_of`):

- containment rate = contained conversations / conversations;
- handover rate = conversations with outcome `handover` / conversations; handover reasons are
  counted over those conversations (`unknown` when no reason was recorded);
- abandonment rate = abandoned conversations / conversations;
- fallback rate = customer messages the NLU did not understand (`nlu_fallback`) / customer
  messages to the bot (messages said to a person during a handover are not counted);
- CSAT average and distribution over the conversations with a rating (1-5); CSAT response
  rate = rated conversations / conversations;
- wait time (handover created → a person claimed it, or → the customer stopped waiting) and
  handling time (claimed → closed by the agent), in seconds, over the handovers that have the
  figure; p50 and p90 are nearest-rank percentiles: the value at rank ceil(p/100 × n) of the n
  values sorted ascending (always one of the observed values, no interpolation);
- top intents: conversations per intent (a conversation counts once per intent it used);
- failing intents: per intent, the share of its conversations that had at least one fallback or
  ended in a handover; only intents with at least `MIN_INTENT_CONVERSATIONS` conversations in
  the period are ranked, so one unlucky conversation does not top the list; `request_human` is
  not ranked (a handover is what the customer asked for, not a failure).

Resolution (`bot.analytics.resolution`; the tasks are those of the period's conversations):

- tasks = the self-care tasks the bot attempted (`bot.analytics.tasks`);
- resolution rate = resolved tasks / tasks; confirmed resolution rate = resolved tasks the
  customer confirmed / tasks; assumed resolution rate = the other resolved tasks / tasks (the
  two add up to the resolution rate);
- net resolution rate = resolved tasks not withdrawn by a recontact within
  `RESOLUTION_RECONTACT_DAYS` / tasks;
- conversation resolution rate = conversations all of whose tasks were resolved /
  conversations with a task;
- silent failure rate = conversations with at least one silent failure (a customer message
  left without a reply, an error reply, a wrong-skill reply) / conversations; `silent_failures`
  counts the flagged lines per kind.

Break-downs (`by`): channel, language, persona (`None` = anonymous), journey stage or skill. A
conversation belongs to every stage of the intents it used, so stage groups can overlap; the
conversations in which no intent was understood form the group `None`. Likewise a conversation
belongs to the skill of every task it had (`None`: no task); the task figures of a skill group
count that skill's tasks only, those of every other group all the tasks of its conversations.

Period over period (`compare`): the previous period is the same number of days ending the day
before `start`. `change` = value - previous value (percentage points for rates, seconds for
times, points for CSAT); `worse` says the change went the wrong way for that KPI: containment,
CSAT and CSAT response rate should go up; handover, fallback and abandonment rates, wait and
handling times should go down; resolution rates (but the assumed one) should go up, the
silent failure rate down; volumes, and the assumed resolution rate (a share of the resolution
rate: read it with the confirmed one), have no good direction and are never "worse". A KPI
without a value in either period (no conversations, no ratings, no handovers) has no change
and is not worse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Iterable

from sqlalchemy import and_, case, func, null, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.expression import ColumnElement

from bot.analytics import resolution
from bot.analytics.models import STAGE_LABELS, Conversation, ConversationIntent, ConversationTask
from bot.analytics.queries.filters import Filters
from bot.settings import local_zone

FILTERS = ("channel", "language", "persona", "stage")
BREAKDOWNS = FILTERS + ("skill",)
OVERLAPPING = ("stage", "skill")  # break-downs whose groups share conversations
MAX_DAYS = 366
MIN_INTENT_CONVERSATIONS = 5
NOT_FAILURES = {"request_human"}  # a handover is what these intents ask for
TOP_INTENTS = 10
PERCENTILES = (50, 90)

# (key, label, direction): "up" = higher is better, "down" = lower is better, None = neither.
KPI_DEFINITIONS = (
    ("conversations", "Conversations", None),
    ("containment_rate", "Containment rate", "up"),
    ("tasks", "Tasks", None),
    ("resolution_rate", "Resolution rate", "up"),
    ("confirmed_resolution_rate", "Resolution rate, confirmed", "up"),
    ("assumed_resolution_rate", "Resolution rate, assumed", None),
    ("net_resolution_rate", "Resolution rate, net of recontact", "up"),
    ("conversation_resolution_rate", "Conversations resolved", "up"),
    ("silent_failure_rate", "Silent failure rate", "down"),
    ("handover_rate", "Handover rate", "down"),
    ("fallback_rate", "Fallback rate", "down"),
    ("abandonment_rate", "Abandonment rate", "down"),
    ("csat_average", "CSAT (average)", "up"),
    ("csat_response_rate", "CSAT response rate", "up"),
    ("wait_p50", "Handover wait p50", "down"),
    ("wait_p90", "Handover wait p90", "down"),
    ("handling_p50", "Handling time p50", "down"),
    ("handling_p90", "Handling time p90", "down"),
)
DIRECTION = {key: direction for key, _, direction in KPI_DEFINITIONS}
LABEL = {key: label for key, label, _ in KPI_DEFINITIONS}


# ---- input --------------------------------------------------------------------------------


def check_period(start: date, end: date) -> None:
    if end < start:
        raise ValueError("the period ends before it starts ('to' is before 'from')")
    if (end - start).days + 1 > MAX_DAYS:
        raise ValueError(f"the period is longer than {MAX_DAYS} days")


def check_filters(filters: dict | None) -> dict[str, str]:
    """The filters that are set, validated by the console's rules (`Filters`); ValueError with
    a message for the user."""
    given = {name: value for name, value in (filters or {}).items() if value not in (None, "")}
    for name in given:
        if name not in FILTERS:
            raise ValueError(f"unknown filter {name!r}: channel, language, persona or stage")
    return Filters.from_args(given).to_args()


def check_by(by: str | None) -> str | None:
    if by in (None, ""):
        return None
    if by not in BREAKDOWNS:
        raise ValueError(f"by must be one of {', '.join(BREAKDOWNS)}")
    return by


def utc_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, end+1 00:00) in Europe/Rome, as UTC instants."""
    lo = datetime.combine(start, time(0), local_zone()).astimezone(timezone.utc)
    hi = datetime.combine(end + timedelta(days=1), time(0), local_zone()).astimezone(timezone.utc)
    return lo, hi


def previous_period(start: date, end: date) -> tuple[date, date]:
    days = (end - start).days + 1
    prev_end = start - timedelta(days=1)
    return prev_end - timedelta(days=days - 1), prev_end


# ---- SQL pieces ---------------------------------------------------------------------------


@dataclass
class _Scope:
    """The conditions on a conversation (period, turns, filters) and the period's bounds."""

    where: list
    lo: datetime
    hi: datetime


def _scope(start: date, end: date, filters: dict[str, str]) -> _Scope:
    lo, hi = utc_bounds(start, end)
    c = Conversation
    where = [c.turns > 0, c.started_at >= lo, c.started_at < hi]
    for name in ("channel", "language", "persona"):
        if name in filters:
            where.append(getattr(c, name) == filters[name])
    if "stage" in filters:
        # an alias, so that the intents query (whose FROM has conversation_intents too) only
        # correlates the conversation
        ci = aliased(ConversationIntent, name="stage_filter")
        where.append(select(ci.id).where(ci.conversation_id == c.id,
                                         ci.stage == filters["stage"])
                     .correlate(Conversation).exists())
    return _Scope(where, lo, hi)


def _source(scope: _Scope, by: str | None):
    """(FROM clause, group column) for a break-down; the group column is None without one."""
    table = Conversation.__table__
    if by is None:
        return table, None
    if by in ("stage", "skill"):
        # (conversation, stage or skill) once each, only for the conversations of the period:
        # the whole table would be read and de-duplicated otherwise
        model, column = ((ConversationIntent, ConversationIntent.stage) if by == "stage"
                         else (ConversationTask, ConversationTask.skill))
        started = aliased(Conversation, name="started")
        groups = (select(model.conversation_id, column)
                  .join(started, started.id == model.conversation_id)
                  .where(started.started_at >= scope.lo, started.started_at < scope.hi)
                  .distinct().subquery(f"{by}s"))
        return (table.outerjoin(groups, groups.c.conversation_id == Conversation.id),
                groups.c[by])
    return table, getattr(Conversation, by)


def _resolution(db: Session, scope: _Scope, by: str | None) -> dict[Any, dict[str, int]]:
    """The counts behind the resolution KPIs, per group (`None` alone without a break-down)."""
    source, group = _source(scope, by)
    days = resolution.recontact_days()
    if by == "skill":  # a skill's tasks only, not every task of its conversations
        tasks = resolution.task_counts(db, scope.where, Conversation.__table__,
                                       ConversationTask.skill, days)
    else:
        tasks = resolution.task_counts(db, scope.where, source, group, days)
    conversations = resolution.conversation_counts(db, scope.where, source, group)
    return {key: {**conversations.get(key, {}), **tasks.get(key, {})}
            for key in list(conversations) + [k for k in tasks if k not in conversations]}


COUNTS = ("conversations", "contained", "handover", "abandoned", "customer_messages",
          "fallback_messages", "rated", "csat_sum")


def _count_if(condition: ColumnElement):
    return func.sum(case((condition, 1), else_=0))


def _tally(rows: Iterable[tuple[str, int | None, int, int, int]]) -> dict[str, int]:
    """The counts behind the rates, summed over rows of (outcome, csat, n, turns, fallbacks)."""
    out = dict.fromkeys(COUNTS, 0)
    for outcome, csat, n, turns, fallbacks in rows:
        out["conversations"] += n
        if outcome in ("contained", "handover", "abandoned"):
            out[outcome] += n
        out["customer_messages"] += turns
        out["fallback_messages"] += fallbacks
        if csat is not None:
            out["rated"] += n
            out["csat_sum"] += n * int(csat)
    return out


def _overview(db: Session, scope: _Scope, by: str | None) -> tuple[list[dict], dict]:
    """One pass over the period: conversations per (group, channel, outcome, handover reason,
    rating), with their messages and fallbacks. A few hundred rows at most, whatever the
    volume; the period's counts, channels, reasons and ratings (and the groups of a column
    break-down) are sums of them."""
    c = Conversation
    reason = case((c.outcome == "handover", func.coalesce(c.handover_reason, "unknown")),
                  else_=None)
    keys = [c.channel.label("channel"), c.outcome.label("outcome"), reason.label("reason"),
            c.csat.label("csat")]
    if by in ("channel", "language", "persona"):
        keys.append(getattr(c, by).label("grp"))
    query = (select(*keys, func.count().label("n"), func.sum(c.turns).label("turns"),
                    func.sum(c.fallbacks).label("fallbacks"))
             .where(*scope.where).group_by(*keys))
    rows = [{"grp": None, **r, "n": int(r["n"]), "turns": int(r["turns"] or 0),
             "fallbacks": int(r["fallbacks"] or 0)} for r in db.execute(query).mappings()]
    groups: dict[Any, list] = {}
    for r in rows:
        groups.setdefault(r["grp"], []).append(
            (r["outcome"], r["csat"], r["n"], r["turns"], r["fallbacks"]))
    return rows, {key: _tally(g) for key, g in groups.items()}


def _headline(db: Session, scope: _Scope, by: str) -> dict[Any, dict[str, int]]:
    """The counts behind the rates per journey stage (the groups overlap, so they cannot be
    summed from the overview)."""
    source, group = _source(scope, by)
    c = Conversation
    query = (select(group.label("grp"), c.outcome, c.csat, func.count(), func.sum(c.turns),
                    func.sum(c.fallbacks))
             .select_from(source).where(*scope.where).group_by(group, c.outcome, c.csat))
    groups: dict[Any, list] = {}
    for grp, outcome, csat, n, turns, fallbacks in db.execute(query):
        groups.setdefault(grp, []).append((outcome, csat, int(n), int(turns or 0),
                                           int(fallbacks or 0)))
    return {key: _tally(g) for key, g in groups.items()}


def _at_rank(r: int, n: int, p: int) -> bool:
    """Nearest rank: of n values sorted ascending, the one at rank r (1-based) is the p-th
    percentile when r is the smallest with r × 100 >= p × n, i.e. r = ceil(p/100 × n)."""
    return r * 100 >= p * n and (r - 1) * 100 < p * n


def _percentiles(db: Session, scope: _Scope, by: str | None) -> tuple[dict, dict]:
    """Nearest-rank p50 and p90 of the handover wait and handling seconds, per group, in one
    pass: each figure is ranked within (group, figure is null), so that the nulls of one do
    not move the ranks of the other; only the rows at the wanted ranks come back."""
    source, group = _source(scope, by)
    c = Conversation
    figures = {"wait": c.handover_wait_seconds, "handling": c.handover_handling_seconds}
    columns = [(group if group is not None else null()).label("grp")]
    for name, col in figures.items():
        partition = [group, col.is_(None)] if group is not None else [col.is_(None)]
        columns += [col.label(f"{name}_v"),
                    func.row_number().over(partition_by=partition, order_by=col)
                    .label(f"{name}_r"),
                    func.count(col).over(partition_by=group).label(f"{name}_n")]
    ranked = (select(*columns).select_from(source)
              .where(or_(*(col.isnot(None) for col in figures.values())), *scope.where)
              .subquery("ranked"))
    wanted = []
    for name in figures:
        v, r, n = (ranked.c[f"{name}_{x}"] for x in "vrn")
        wanted += [and_(v.isnot(None), r * 100 >= p * n, (r - 1) * 100 < p * n)
                   for p in PERCENTILES]
    out: tuple[dict, dict] = ({}, {})
    for row in db.execute(select(ranked).where(or_(*wanted))).mappings():
        for i, name in enumerate(figures):
            v, r, n = row[f"{name}_v"], row[f"{name}_r"], row[f"{name}_n"]
            if v is None:
                continue
            entry = out[i].setdefault(row["grp"], {"count": int(n),
                                                   **{f"p{p}": None for p in PERCENTILES}})
            for p in PERCENTILES:
                if _at_rank(int(r), int(n), p):
                    entry[f"p{p}"] = int(v)
    return out


def _hour_bucket(db: Session):
    if db.bind.dialect.name == "postgresql":
        return func.to_char(Conversation.started_at, "YYYY-MM-DD HH24")
    return func.strftime("%Y-%m-%d %H", Conversation.started_at)


def _volume_by_day(db: Session, where: list, start: date, end: date) -> list[dict]:
    """Conversations per Europe/Rome day, every day of the period (zeros included). SQL groups
    by UTC hour (portable, and Rome's offset from UTC is a whole number of hours), Python maps
    each hour to its local day: at most 24 rows a day come back, whatever the volume."""
    bucket = _hour_bucket(db)
    days = {start + timedelta(days=i): 0 for i in range((end - start).days + 1)}
    for hour, n in db.execute(select(bucket, func.count()).where(*where).group_by(bucket)):
        utc_hour = datetime.strptime(hour, "%Y-%m-%d %H").replace(tzinfo=timezone.utc)
        local_day = utc_hour.astimezone(local_zone()).date()
        if local_day in days:
            days[local_day] += int(n)
    return [{"day": d.isoformat(), "conversations": n} for d, n in days.items()]


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _kpis(counts: dict[str, int] | None, wait: dict | None, handling: dict | None,
          resolved: dict[str, int] | None = None) -> dict:
    counts = counts or {}
    n = counts.get("conversations", 0)
    wait, handling = wait or {}, handling or {}
    return {
        "conversations": n,
        "containment_rate": _rate(counts.get("contained", 0), n),
        **resolution.rates(resolved),
        "handover_rate": _rate(counts.get("handover", 0), n),
        "fallback_rate": _rate(counts.get("fallback_messages", 0),
                               counts.get("customer_messages", 0)),
        "abandonment_rate": _rate(counts.get("abandoned", 0), n),
        "csat_average": _rate(counts.get("csat_sum", 0), counts.get("rated", 0)),
        "csat_response_rate": _rate(counts.get("rated", 0), n),
        "wait_p50": wait.get("p50"),
        "wait_p90": wait.get("p90"),
        "handling_p50": handling.get("p50"),
        "handling_p90": handling.get("p90"),
    }


def group_label(by: str, key: Any) -> str:
    if by == "stage":
        return STAGE_LABELS.get(key, key) if key else "no intent understood"
    if by == "persona":
        return key or "anonymous"
    if by == "skill":
        return key or "no task"
    if by == "channel":
        return key or "unknown"
    return key or "unknown"


# ---- the KPIs -----------------------------------------------------------------------------


def compute(db: Session, start: date, end: date, filters: dict | None = None,
            by: str | None = None) -> dict:
    """Every KPI of the period (see the module's docstring), optionally per group."""
    check_period(start, end)
    filters = check_filters(filters)
    by = check_by(by)
    scope = _scope(start, end, filters)
    where = scope.where
    c = Conversation

    rows, tallies = _overview(db, scope, by)
    counts = _tally((r["outcome"], r["csat"], r["n"], r["turns"], r["fallbacks"]) for r in rows)
    resolved = _resolution(db, scope, None).get(None)
    waits, handlings = _percentiles(db, scope, None)
    wait, handling = waits.get(None), handlings.get(None)

    def summed(key: str, only: Callable[[dict], bool] = lambda r: True) -> dict:
        out: dict = {}
        for r in rows:
            if only(r):
                out[r[key]] = out.get(r[key], 0) + r["n"]
        return out

    channels = [{"channel": ch or "unknown", "conversations": n}
                for ch, n in summed("channel").items()]
    channels.sort(key=lambda r: (-r["conversations"], r["channel"]))
    reasons = [{"reason": reason, "conversations": n} for reason, n in
               summed("reason", lambda r: r["outcome"] == "handover").items()]
    reasons.sort(key=lambda r: (-r["conversations"], r["reason"]))
    ratings = summed("csat", lambda r: r["csat"] is not None)
    csat_distribution = [{"rating": r, "conversations": ratings.get(r, 0)} for r in range(1, 6)]

    ci = ConversationIntent
    failed = or_(c.fallbacks > 0, c.outcome == "handover")
    intent_rows = [{"intent": intent, "stage": stage, "conversations": int(n),
                    "failed": int(f or 0), "failure_rate": int(f or 0) / int(n)}
                   for intent, stage, n, f in db.execute(
                       select(ci.intent, ci.stage, func.count(), _count_if(failed))
                       .select_from(ci).join(c, c.id == ci.conversation_id).where(*where)
                       .group_by(ci.intent, ci.stage))]
    top = sorted(intent_rows, key=lambda r: (-r["conversations"], r["intent"]))[:TOP_INTENTS]
    failing = sorted((r for r in intent_rows
                      if r["conversations"] >= MIN_INTENT_CONVERSATIONS and r["failed"]
                      and r["intent"] not in NOT_FAILURES),
                     key=lambda r: (-r["failure_rate"], -r["conversations"], r["intent"]))
    result = {
        "from": start.isoformat(), "to": end.isoformat(), "days": (end - start).days + 1,
        "filters": filters, "by": by,
        "kpis": _kpis(counts, wait, handling, resolved),
        "counts": counts,
        "resolution_counts": {key: (resolved or {}).get(key, 0) for key in
                              resolution.TASK_COUNTS + resolution.CONVERSATION_COUNTS},
        "silent_failures": resolution.failure_counts(db, where),
        "recontact_days": resolution.recontact_days(),
        "outcomes": {o: counts[o] for o in ("contained", "handover", "abandoned")},
        "volume_by_day": _volume_by_day(db, where, start, end),
        "volume_by_channel": channels,
        "handover_reasons": reasons,
        "csat_distribution": csat_distribution,
        "wait_seconds": wait or {"count": 0, "p50": None, "p90": None},
        "handling_seconds": handling or {"count": 0, "p50": None, "p90": None},
        "top_intents": top,
        "failing_intents": failing[:TOP_INTENTS],
        "min_intent_conversations": MIN_INTENT_CONVERSATIONS,
        "groups": [],
    }
    if by:
        per_group = _headline(db, scope, by) if by in OVERLAPPING else tallies
        waits, handlings = _percentiles(db, scope, by)
        resolved_groups = _resolution(db, scope, by)
        for key in resolved_groups:  # a skill's tasks may be in no conversation of the group
            per_group.setdefault(key, _tally(()))
        groups = [{"key": key, "label": group_label(by, key), "counts": g,
                   "kpis": _kpis(g, waits.get(key), handlings.get(key),
                                 resolved_groups.get(key))}
                  for key, g in per_group.items()]
        groups.sort(key=lambda g: (-g["counts"]["conversations"], g["label"]))
        result["groups"] = groups
    return result


def _compare_kpis(now: dict, before: dict) -> list[dict]:
    rows = []
    for key, label, direction in KPI_DEFINITIONS:
        value, previous = now.get(key), before.get(key)
        change = value - previous if value is not None and previous is not None else None
        worse = better = False
        if change is not None and direction == "up":
            worse, better = change < 0, change > 0
        elif change is not None and direction == "down":
            worse, better = change > 0, change < 0
        rows.append({"key": key, "label": label, "direction": direction, "value": value,
                     "previous": previous, "change": change, "worse": worse,
                     "better": better})
    return rows


def compare(db: Session, start: date, end: date, filters: dict | None = None,
            by: str | None = None) -> dict:
    """The period and the previous one of the same length: every KPI with its previous value,
    the change and whether it got worse (per group too, with a break-down)."""
    current = compute(db, start, end, filters, by)
    prev_start, prev_end = previous_period(start, end)
    previous = compute(db, prev_start, prev_end, filters, by)
    kpis = _compare_kpis(current["kpis"], previous["kpis"])
    # Groups of either period: one that had conversations only before shows 0 now.
    groups = []
    now_of = {g["key"]: g for g in current["groups"]}
    before = {g["key"]: g for g in previous["groups"]}
    for g in current["groups"] + [g for g in previous["groups"] if g["key"] not in now_of]:
        new, old = now_of.get(g["key"]), before.get(g["key"])
        groups.append({"key": g["key"], "label": g["label"],
                       "kpis": _compare_kpis(new["kpis"] if new else _kpis(None, None, None),
                                             old["kpis"] if old else _kpis(None, None, None))})
    return {"current": current, "previous": previous, "kpis": kpis,
            "worsened": [k["key"] for k in kpis if k["worse"]], "groups": groups}


def known_channels(db: Session) -> list[str]:
    """The channels seen in the log, for the dashboard's filter."""
    return sorted(ch for (ch,) in db.execute(
        select(Conversation.channel).where(Conversation.turns > 0).distinct()) if ch)
