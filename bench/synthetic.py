"""Synthetic conversation log for benchmarks: N realistic conversations written straight into
the log's tables (`bot.analytics.models`) with bulk inserts, on SQLite or PostgreSQL.

Deterministic: the same `seed`, `n` and `end` give the same rows. The conversations spread over
the 90 days before `end` (more of them in the day than at night, fewer at weekends), in Italian
and English, on the web and the messaging apps, anonymous or identified (four personas), about
every self-care intent, with fallbacks, handovers (reason, state, wait and handling times, the
agent's lines), abandoned forms, CSAT ratings with comments, CX-lead tags and reviewed flags.
Each has 4 to 12 transcript lines in the customers' own phrasing; texts are masked the way the
log keeps them (`[EMAIL]`, `[PHONE]`, ...). The full-text indexes are kept by the database as
for real rows (FTS5 triggers on SQLite, the GIN index on PostgreSQL).

Two words are planted for search benchmarks: "bolletta"/"bill" are everywhere (COMMON_WORDS),
"fotovoltaico"/"photovoltaic" in about one conversation in a thousand (RARE_WORDS); NO_MATCH
never appears.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Engine

from bot.analytics.models import (
    PREDEFINED_TAGS,
    Conversation,
    ConversationIntent,
    ConversationMessage,
    ConversationTag,
    stage_of,
)

COMMON_WORDS = {"it": "bolletta", "en": "bill"}
RARE_WORDS = {"it": "fotovoltaico", "en": "photovoltaic"}
NO_MATCH = "zanzibar"
DAYS = 90
CODE_POOL = 20_000  # identified conversations belong to C2000000 ... C2019999
AGENTS = ("Giulia", "Marco", "Sara", "Luca", "Elena")

_W = {  # weights
    "language": {"it": 78, "en": 22},
    "channel": {"web": 45, "whatsapp": 30, "telegram": 10, "messenger": 12, "shell": 3},
    "persona": {None: 35, "family": 30, "digital": 15, "senior": 12, "business": 8},
    "intent": {"check_bill": 18, "pay_bill": 10, "explain_bill": 8, "submit_meter_reading": 10,
               "report_outage": 8, "ticket_status": 7, "activate_ebill": 5,
               "update_contact": 5, "setup_direct_debit": 4, "request_callback": 4,
               "contract_info": 7, "move_home": 3, "file_complaint": 5, "give_feedback": 2},
    "outcome": {"contained": 68, "handover": 20, "abandoned": 12},
    "reason": {"request_human": 45, "misunderstanding": 20, "complaint": 12, "move_home": 8,
               "vip": 5, "frustration": 10},
    "handover_state": {"closed": 75, "abandoned": 12, "unavailable": 8, "fallback": 5},
}

# What customers say, per intent and language: {m} a month, {n} a number, {email}, {phone},
# {iban}, {address}, {code} the masked value.
SAY: dict[str, dict[str, list[str]]] = {
    "check_bill": {
        "it": ["quanto devo pagare?", "a quanto ammonta l'ultima bolletta?",
               "vorrei sapere l'importo della bolletta di {m}", "ho una bolletta da pagare?",
               "mi dici quanto è la bolletta", "quando scade la bolletta?",
               "non trovo la bolletta di {m}", "bolletta"],
        "en": ["how much do I owe?", "what is my latest bill?", "when is my bill due?",
               "can you show me the bill for {m}", "do I have any unpaid bill?"],
    },
    "pay_bill": {
        "it": ["come posso pagare la bolletta?", "voglio pagare adesso",
               "posso pagare con la carta?",
               "mandami il link per pagare", "ho già pagato la bolletta di {m}, risulta?",
               "pagamento bolletta"],
        "en": ["how can I pay my bill?", "I want to pay now", "can I pay by card?",
               "send me the payment link", "I already paid the {m} bill, can you check?"],
    },
    "explain_bill": {
        "it": ["perché la bolletta è così alta?", "la bolletta di {m} è il doppio del solito",
               "cosa sono gli oneri di sistema in bolletta?", "non capisco la voce conguaglio",
               "mi hanno addebitato {n} euro, perché?", "bolletta troppo cara questo mese"],
        "en": ["why is my bill so high?", "my {m} bill is twice the usual",
               "what are these system charges on my bill?", "I was charged {n} euros, why?"],
    },
    "submit_meter_reading": {
        "it": ["voglio comunicare la lettura del contatore", "autolettura {n}",
               "la lettura è {n}", "devo mandare la lettura del gas",
               "come faccio l'autolettura?"],
        "en": ["I want to submit a meter reading", "my reading is {n}",
               "meter reading {n}", "how do I send the gas reading?"],
    },
    "report_outage": {
        "it": ["non ho la luce", "sono senza corrente da stamattina",
               "è saltata la luce in tutto il palazzo",
               "guasto al contatore", "manca il gas da ieri sera", "c'è un blackout in zona?"],
        "en": ["I have no power", "the electricity has been off since this morning",
               "there is a blackout in my street", "my meter is broken", "no gas since last night"],
    },
    "ticket_status": {
        "it": ["a che punto è la mia pratica?", "novità sul reclamo?",
               "ho aperto una segnalazione, ci sono aggiornamenti?",
               "stato della richiesta del cliente {code}", "quando risolvete il guasto?"],
        "en": ["what is the status of my request?", "any news on my complaint?",
               "I opened a ticket last week, any update?", "when will the fault be fixed?"],
    },
    "activate_ebill": {
        "it": ["voglio la bolletta via email", "basta bollette di carta",
               "attiva la bolletta digitale",
               "mandatemi le bollette a {email}"],
        "en": ["I want my bills by email", "no more paper bills please", "switch me to paperless",
               "send my bills to {email}"],
    },
    "update_contact": {
        "it": ["voglio cambiare il numero di telefono", "la mia nuova email è {email}",
               "aggiorna il mio numero: {phone}", "ho cambiato indirizzo email"],
        "en": ["I want to change my phone number", "my new email is {email}",
               "please update my number to {phone}"],
    },
    "setup_direct_debit": {
        "it": ["voglio la domiciliazione bancaria", "addebito sul conto {iban}",
               "come attivo il RID?", "voglio pagare in automatico dal conto"],
        "en": ["I want to set up a direct debit", "please debit my account {iban}",
               "can I pay automatically from my bank account?"],
    },
    "request_callback": {
        "it": ["potete richiamarmi?", "chiamatemi domani mattina al {phone}",
               "vorrei essere richiamato",
               "mi fate chiamare da un consulente?"],
        "en": ["can you call me back?", "call me tomorrow morning on {phone}",
               "I'd like a callback please"],
    },
    "contract_info": {
        "it": ["che tariffa ho?", "quanto pago al kWh?", "quando scade il mio contratto?",
               "avete offerte per il gas?", "è un prezzo fisso o variabile?",
               "ho un impianto fotovoltaico, cambia qualcosa nel contratto?"],
        "en": ["what tariff am I on?", "how much do I pay per kWh?", "when does my contract end?",
               "do you have gas offers?",
               "I have a photovoltaic system, does it change my contract?"],
    },
    "move_home": {
        "it": ["mi trasferisco il mese prossimo",
               "devo fare un trasloco, come sposto la fornitura?",
               "cambio casa, vado in {address}", "voltura per trasloco"],
        "en": ["I'm moving house next month", "how do I move my supply to a new home?",
               "I'm moving to {address}"],
    },
    "file_complaint": {
        "it": ["voglio fare un reclamo", "sono molto insoddisfatto del servizio",
               "vi ho già scritto tre volte e nessuno risponde", "reclamo per la bolletta di {m}",
               "è una vergogna, voglio presentare un reclamo"],
        "en": ["I want to file a complaint", "I am very unhappy with your service",
               "I wrote three times and nobody answered", "complaint about the {m} bill"],
    },
    "give_feedback": {
        "it": ["il servizio è migliorato, grazie", "app comoda ma lenta", "ottimo servizio"],
        "en": ["the service got better, thanks", "the app is handy but slow", "great service"],
    },
}
GREET = {"it": ["ciao", "buongiorno", "salve", "buonasera", "ciao, ho bisogno di aiuto"],
         "en": ["hi", "hello", "good morning", "hi there, I need some help"]}
BYE = {"it": ["grazie", "grazie mille, ciao", "perfetto, grazie", "ok grazie", "arrivederci"],
       "en": ["thanks", "thank you, bye", "great, thanks", "ok thanks", "goodbye"]}
FALLBACK = {"it": ["boh", "non so", "eh?", "asdf", "la cosa di prima", "quella roba là",
                   "mi serve quella cosa"],
            "en": ["what?", "dunno", "that thing", "asdf", "the thing from before"]}
HUMAN = {"it": ["voglio parlare con un operatore", "mi passi una persona?", "operatore!",
                "basta, voglio un umano"],
         "en": ["I want to talk to a human", "can I speak to an agent?", "agent please",
                "let me talk to a person"]}
BOT_ANSWER = {"it": ["Ecco le informazioni richieste, [NAME].", "Fatto! Ti ho inviato i dettagli.",
                     "La tua ultima bolletta è di {n} euro e scade il 25 {m}.",
                     "Ho registrato la richiesta.", "Ti ho aperto una segnalazione."],
              "en": ["Here is what you asked for, [NAME].", "Done! I sent you the details.",
                     "Your latest bill is {n} euros, due on 25 {m}.",
                     "I have recorded your request.", "I opened a ticket for you."]}
BOT_GREET = {"it": "Ciao! Sono l'assistente di Luce Nord Energia. Come posso aiutarti?",
             "en": "Hi! I'm Luce Nord Energia's assistant. How can I help?"}
BOT_FALLBACK = {"it": "Scusa, non ho capito. Puoi dirlo in un altro modo?",
                "en": "Sorry, I didn't get that. Could you say it another way?"}
BOT_BYE = {"it": "Grazie a te! Come valuti questa conversazione da 1 a 5?",
           "en": "Thank you! How would you rate this conversation from 1 to 5?"}
AGENT_SAY = {"it": ["Buongiorno, sono {agent}. Vedo la sua richiesta, verifico subito.",
                    "Ho controllato: è tutto a posto, la pratica è stata aggiornata.",
                    "Le ho inviato una email con i dettagli."],
             "en": ["Hello, this is {agent}. I can see your request, let me check.",
                    "I checked: everything is fine now, the request has been updated.",
                    "I sent you an email with the details."]}
CUSTOMER_TO_AGENT = {"it": ["grazie, aspetto", "ok perfetto", "va bene"],
                     "en": ["thanks, I'll wait", "ok great", "fine"]}
COMMENTS = {"it": ["tutto chiaro", "troppo lento", "non ha capito la domanda", "molto utile"],
            "en": ["all clear", "too slow", "it didn't understand me", "very helpful"]}
MONTHS = {"it": ["gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio",
                 "agosto", "settembre", "ottobre", "novembre", "dicembre"],
          "en": ["January", "February", "March", "April", "May", "June", "July", "August",
                 "September", "October", "November", "December"]}
FORMS = {"submit_meter_reading": "meter_reading_form", "file_complaint": "complaint_form",
         "update_contact": "contact_form", "request_callback": "callback_form",
         "setup_direct_debit": "direct_debit_form"}


def _pick(rng: random.Random, weights: dict) -> Any:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


class _Generator:
    def __init__(self, seed: int, end: datetime) -> None:
        self.rng = random.Random(seed)
        self.end = end

    def _fill(self, template: str, lang: str, intent: str = "") -> str:
        r = self.rng
        return template.format(m=r.choice(MONTHS[lang]), n=r.randrange(40, 400),
                               email="[EMAIL]", phone="[PHONE]", iban="[IBAN]",
                               address="[ADDRESS]", code="[CUSTOMER_CODE]",
                               agent=r.choice(AGENTS))

    def _say(self, intent: str, lang: str) -> str:
        options = SAY[intent][lang]
        rare = [t for t in options if RARE_WORDS[lang] in t]
        common = [t for t in options if RARE_WORDS[lang] not in t]
        # the rare word: about one conversation in a thousand overall
        if rare and self.rng.random() < 0.012:
            return self._fill(rare[0], lang, intent)
        return self._fill(self.rng.choice(common), lang, intent)

    def _start(self) -> datetime:
        r = self.rng
        while True:
            day = r.randrange(DAYS)
            when = self.end - timedelta(days=day + 1)
            if when.weekday() >= 5 and r.random() < 0.4:
                continue  # fewer conversations at weekends
            hour = _pick(r, {h: (1 if h < 7 else 6 if h < 9 else 10 if h < 19 else 5 if h < 22
                                 else 2) for h in range(24)})
            return when.replace(hour=hour, minute=r.randrange(60), second=r.randrange(60),
                                microsecond=0)

    def conversation(self, cid: int) -> tuple[dict, list[dict], list[dict], list[dict]]:
        r = self.rng
        lang = _pick(r, _W["language"])
        channel = _pick(r, _W["channel"])
        persona = _pick(r, _W["persona"])
        code = f"C{2000000 + r.randrange(CODE_POOL):07d}" if persona else None
        intent = _pick(r, _W["intent"])
        outcome = _pick(r, _W["outcome"])
        start = self._start()
        at = start
        lines: list[dict] = []
        intents: dict[str, int] = {}
        turns = fallbacks = 0
        paused = False

        def add(sender: str, said: str, intent_name: str | None = None, fallback=False,
                agent: str | None = None) -> None:
            nonlocal at, turns, fallbacks
            if len(lines) >= 12:
                return
            at = at + timedelta(seconds=r.randrange(3, 45))
            conf = None
            if sender == "customer":
                conf = round(r.uniform(0.3, 0.55) if fallback else r.uniform(0.62, 0.99), 3)
                if not paused:
                    turns += 1
                    if fallback:
                        fallbacks += 1
                    elif intent_name:
                        intents[intent_name] = intents.get(intent_name, 0) + 1
            lines.append({"conversation_id": cid, "at": at, "sender": sender, "text": said,
                          "intent": intent_name, "confidence": conf, "entities": None,
                          "agent": agent, "fallback": fallback, "handover": paused})

        budget = r.randint(4, 12)
        if r.random() < 0.55:
            add("customer", r.choice(GREET[lang]), "greet")
            add("bot", BOT_GREET[lang])
        if r.random() < 0.08:
            add("customer", r.choice(FALLBACK[lang]), "nlu_fallback", fallback=True)
            add("bot", BOT_FALLBACK[lang])
        add("customer", self._say(intent, lang), intent)
        if intent in FORMS and r.random() < 0.5:
            add("action", FORMS[intent])
        add("bot", self._fill(r.choice(BOT_ANSWER[lang]), lang))
        if len(lines) + 2 <= budget - 2 and r.random() < 0.35:  # a second request
            second = _pick(r, _W["intent"])
            add("customer", self._say(second, lang), second)
            add("bot", self._fill(r.choice(BOT_ANSWER[lang]), lang))

        conv: dict[str, Any] = {
            "id": cid, "sender_id": f"synthetic-{cid:08d}", "session_start": start.timestamp(),
            "customer_code": code, "channel": channel, "language": lang, "persona": persona,
            "outcome": outcome, "ended": True, "active_loop": None, "last_was_fallback": False,
            "handed_over": False, "handover_id": None, "handover_reason": None,
            "handover_state": None, "handover_wait_seconds": None,
            "handover_handling_seconds": None, "csat": None, "csat_comment": None,
            "started_at": start, "reviewed": r.random() < 0.12, "reviewed_by": None,
        }
        if outcome == "handover":
            reason = _pick(r, _W["reason"])
            state = _pick(r, _W["handover_state"])
            if reason == "misunderstanding" and len(lines) < budget - 3:
                add("customer", r.choice(FALLBACK[lang]), "nlu_fallback", fallback=True)
                add("bot", BOT_FALLBACK[lang])
            else:
                add("customer", r.choice(HUMAN[lang]), "request_human")
            conv.update(handed_over=True, handover_reason=reason, handover_state=state)
            if state in ("closed", "abandoned"):
                add("event", "handover: the conversation is with a person")
                paused = True
                conv["handover_wait_seconds"] = int(r.lognormvariate(4.3, 0.7))
                if state == "closed":
                    agent = r.choice(AGENTS)
                    conv["handover_handling_seconds"] = int(r.lognormvariate(5.6, 0.5))
                    conv["handover_id"] = cid
                    add("agent", self._fill(AGENT_SAY[lang][0], lang), agent=agent)
                    while len(lines) < budget - 1:
                        add("agent", self._fill(r.choice(AGENT_SAY[lang]), lang), agent=agent)
                        if len(lines) < budget - 1:
                            add("customer", r.choice(CUSTOMER_TO_AGENT[lang]))
                    paused = False
                    add("event", "handover ended: the bot takes over again")
            else:
                add("bot", "Al momento non ci sono operatori disponibili: posso farti "
                           "richiamare." if lang == "it" else
                    "No agent is available right now: I can arrange a callback.")
        elif outcome == "abandoned":
            while len(lines) < max(budget - 2, 3):  # talk, then leave in the middle of it
                second = _pick(r, _W["intent"])
                add("customer", self._say(second, lang), second)
                add("bot", self._fill(r.choice(BOT_ANSWER[lang]), lang))
            if intent in FORMS and r.random() < 0.6:
                conv["active_loop"] = FORMS[intent]
                add("bot", "Qual è il valore?" if lang == "it" else "What is the value?")
            else:
                add("customer", r.choice(FALLBACK[lang]), "nlu_fallback", fallback=True)
                add("bot", BOT_FALLBACK[lang])
                conv["last_was_fallback"] = True
        while outcome != "abandoned" and len(lines) < max(budget - 1, 4):  # the length drawn
            add("customer", r.choice(BYE[lang]), "thank_you")
            add("bot", BOT_BYE[lang])
        if outcome != "abandoned" and r.random() < 0.32:
            weights = [6, 6, 14, 30, 44] if outcome == "contained" else [18, 14, 20, 26, 22]
            conv["csat"] = r.choices([1, 2, 3, 4, 5], weights=weights)[0]
            if r.random() < 0.25:
                conv["csat_comment"] = r.choice(COMMENTS[lang])
        conv.update(turns=turns, fallbacks=fallbacks, last_event_at=lines[-1]["at"],
                    ended_at=lines[-1]["at"])
        intent_rows = [{"conversation_id": cid, "intent": name, "stage": stage_of(name),
                        "count": count} for name, count in intents.items()]
        tags = []
        if r.random() < 0.06:
            for tag in r.sample(PREDEFINED_TAGS, r.choice([1, 1, 2])):
                tags.append({"conversation_id": cid, "tag": tag, "user_id": None,
                             "at": lines[-1]["at"] + timedelta(days=1)})
        return conv, lines, intent_rows, tags


def generate(engine: Engine, n: int = 100_000, seed: int = 20261201,
             end: datetime | None = None, batch: int = 2_000) -> dict:
    """Insert `n` synthetic conversations; the numbers of rows written per table."""
    end = end or datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    gen = _Generator(seed, end)
    with engine.connect() as c:
        first = int(c.execute(select(func.coalesce(func.max(Conversation.id), 0))).scalar_one()) + 1
    counts = {"conversations": 0, "conversation_messages": 0, "conversation_intents": 0,
              "conversation_tags": 0}
    for offset in range(0, n, batch):
        convs, lines, intents, tags = [], [], [], []
        for cid in range(first + offset, first + min(n, offset + batch)):
            conv, conv_lines, conv_intents, conv_tags = gen.conversation(cid)
            convs.append(conv)
            lines += conv_lines
            intents += conv_intents
            tags += conv_tags
        with engine.begin() as c:
            c.execute(insert(Conversation.__table__), convs)
            c.execute(insert(ConversationMessage.__table__), lines)
            if intents:
                c.execute(insert(ConversationIntent.__table__), intents)
            if tags:
                c.execute(insert(ConversationTag.__table__), tags)
        counts["conversations"] += len(convs)
        counts["conversation_messages"] += len(lines)
        counts["conversation_intents"] += len(intents)
        counts["conversation_tags"] += len(tags)
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":  # the ids were given: move the sequence on
            c.execute(text("SELECT setval(pg_get_serial_sequence('conversations', 'id'), "
                           "(SELECT MAX(id) FROM conversations))"))
            c.execute(text("ANALYZE"))
        else:
            c.execute(text("ANALYZE"))
    return counts
