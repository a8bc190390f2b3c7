"""How long Listen takes to group messages into topics (`bot.analytics.grouping`).

Generated Italian customer messages (nothing downloaded): 24 themes the assistant cannot handle
yet, each written in several ways and filled with Faker's it_IT places, first names and
numbers, greetings, politeness and typos, plus a quarter of unrelated messages (Faker's random
Italian sentences). For 10,000 and 100,000 messages: wall time of the grouping, the process's
peak memory, the distinct texts, the topics found (at least `MIN_TOPIC_SIZE` messages) and
how well they match the generating themes (adjusted Rand index and homogeneity over the themed
messages). Run with `python -m bench.topics [--sizes
10000,100000]`; results in bench/results.json (key "topics") and their own section of
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from datetime import datetime, timezone

import numpy as np
from faker import Faker
from sklearn.metrics import adjusted_rand_score, homogeneity_score

from bench.common import machine, machine_load, record
from bot.analytics import grouping
from bot.analytics.topics import MIN_TOPIC_SIZE

TITLE = "## Listen: grouping messages into topics"
SIZES = (10_000, 100_000)
NOISE_SHARE = 0.25

THEMES = {
    "solar": ["avete offerte per i pannelli fotovoltaici?", "vorrei installare il fotovoltaico",
              "quanto costa un impianto fotovoltaico da {n} kW",
              "fate impianti fotovoltaici a {city}?"],
    "ev": ["avete colonnine di ricarica per auto elettrica?", "vorrei una colonnina di ricarica "
           "in garage", "tariffa per la ricarica dell'auto elettrica", "installate colonnine di "
           "ricarica a {city}?"],
    "bonus": ["come richiedo il bonus sociale?", "ho diritto al bonus sociale con isee {n}?",
              "non mi avete applicato il bonus sociale", "il bonus sociale gas come funziona"],
    "heat_pump": ["vendete pompe di calore?", "pompa di calore al posto della caldaia",
                  "incentivi per la pompa di calore", "quanto consuma una pompa di calore"],
    "boiler": ["fate la manutenzione della caldaia?", "la caldaia perde acqua, mandate un tecnico?",
               "revisione annuale caldaia a {city}", "controllo fumi della caldaia"],
    "insurance": ["avete una polizza assicurativa per la casa?", "assicurazione sugli impianti "
                  "di casa", "polizza guasti elettrodomestici",
                  "copertura assicurativa per guasti"],
    "job": ["state assumendo? vorrei lavorare con voi", "come mando il curriculum",
            "posizioni aperte a {city}", "lavoro come tecnico, cercate personale?"],
    "fiber": ["vendete anche la fibra internet?", "offerta luce e fibra insieme",
              "avete internet in fibra a {city}?", "abbinare fibra ottica al contratto"],
    "app": ["l'app non si apre sul telefono", "app crasha al login", "non riesco a entrare "
            "nell'app", "l'applicazione si blocca sempre"],
    "condo": ["sono l'amministratore del condominio", "fornitura per il condominio di via {n}",
              "contratto condominiale per le parti comuni", "amministratore di condominio, "
              "offerte?"],
    "refund": ["quando arriva il rimborso del deposito cauzionale?", "rimborso del deposito "
               "cauzionale dopo la disdetta", "non ho ricevuto il rimborso del deposito",
               "deposito cauzionale restituito?"],
    "green": ["l'energia che vendete è rinnovabile?", "avete energia verde certificata?",
              "garanzia di origine energia rinnovabile", "offerta energia verde al {n}%"],
    "dual": ["posso avere un'unica bolletta luce e gas?", "unire le bollette di luce e gas",
             "bolletta unica per due forniture", "fattura unica luce gas"],
    "smart": ["termostato smart compatibile?", "vendete termostati intelligenti?",
              "collegare il termostato smart all'app", "sconto sul termostato smart"],
    "battery": ["batterie di accumulo per il fotovoltaico", "sistema di accumulo da {n} kWh",
                "vendete batterie di accumulo?", "accumulo domestico con batteria"],
    "ebike": ["noleggio bici elettriche?", "avete bici elettriche in offerta?",
              "sconto bici elettrica per i clienti", "bici elettrica a rate"],
    "moving_abroad": ["mi trasferisco all'estero, cosa faccio?", "vado a vivere all'estero",
                      "trasferimento all'estero e contratto", "chiudere tutto perché mi "
                      "trasferisco all'estero"],
    "invoice_pec": ["mandatemi la fattura via pec", "indirizzo pec per le fatture",
                    "fattura elettronica sulla pec aziendale", "codice destinatario sdi"],
    "power_increase": ["aumento di potenza a {n} kW", "vorrei aumentare la potenza del "
                       "contatore", "quanto costa aumentare la potenza", "potenza impegnata "
                       "più alta"],
    "deceased": ["il titolare del contratto è deceduto", "mio padre è deceduto, il contratto?",
                 "intestatario deceduto cosa serve", "successione del contratto per decesso"],
    "discount_code": ["ho un codice sconto, dove lo inserisco?", "codice promozionale non "
                      "funziona", "inserire codice sconto amico", "codice promo scaduto"],
    "gift": ["buono regalo per i clienti?", "punti fedeltà e premi", "catalogo premi fedeltà",
             "come uso i punti fedeltà"],
    "stairs_light": ["luce delle scale condominiali guasta", "lampione in strada spento a "
                     "{city}", "illuminazione pubblica rotta", "lampione spento davanti casa"],
    "tax_deduction": ["detrazione fiscale per la caldaia", "ecobonus per la pompa di calore",
                      "documenti per la detrazione fiscale", "superbonus, mi aiutate?"],
}
OPENINGS = ("", "", "buongiorno, ", "salve, ", "ciao ", "scusate, ", "buonasera ")
CLOSINGS = ("", "", "", " grazie", " per favore", " grazie mille", "?", " urgente")


def generate(n: int, seed: int = 42) -> tuple[list[str], list[str | None]]:
    """`n` messages and the theme each was written from (None for an unrelated message)."""
    rng = random.Random(seed)
    fake = Faker("it_IT")
    fake.seed_instance(seed)
    names = list(THEMES)
    texts: list[str] = []
    themes: list[str | None] = []
    for _ in range(n):
        if rng.random() < NOISE_SHARE:
            texts.append(fake.sentence(nb_words=rng.randint(3, 9)))
            themes.append(None)
            continue
        theme = rng.choice(names)
        text = rng.choice(THEMES[theme]).format(n=rng.randint(1, 60), city=fake.city())
        text = rng.choice(OPENINGS) + text + rng.choice(CLOSINGS)
        if rng.random() < 0.15:  # a typo: two neighbouring letters swapped
            i = rng.randrange(1, max(2, len(text) - 1))
            text = text[:i - 1] + text[i] + text[i - 1] + text[i + 1:]
        if rng.random() < 0.1:
            text = text.capitalize()
        texts.append(text)
        themes.append(theme)
    return texts, themes


def measure(n: int) -> dict:
    texts, themes = generate(n)
    start = time.perf_counter()
    labels = grouping.group_texts(texts).labels
    seconds = time.perf_counter() - start
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.array([])
    topics = int((sizes >= MIN_TOPIC_SIZE).sum())
    in_topic = np.array([lab >= 0 and sizes[lab] >= MIN_TOPIC_SIZE for lab in labels])
    themed = np.array([t is not None for t in themes])
    truth = [t for t in themes if t is not None]
    found = [int(lab) if ok else -1 - i for i, (lab, ok) in
             enumerate(zip(labels[themed], in_topic[themed]))]  # outside a topic: alone
    return {"messages": n, "distinct_texts": len({grouping.normalise(t) for t in texts}),
            "seconds": round(seconds, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "topics": topics, "themes": len(THEMES),
            "themed_in_a_topic": round(float(in_topic[themed].mean()), 3),
            "unrelated_in_a_topic": round(float(in_topic[~themed].mean()), 3),
            "adjusted_rand": round(adjusted_rand_score(truth, found), 3),
            "homogeneity": round(homogeneity_score(truth, found), 3)}


def section(raw: dict) -> list[str]:
    r = raw.get("topics")
    if not r:
        return []
    lines = [f"{TITLE} (run {r['date']})", "",
             f"Machine: {r['machine']} (load average {r['load']} at the start). "
             "`python -m bench.topics`: generated Italian messages (24 themes the assistant "
             f"cannot handle yet, written several ways with Faker's it_IT fillers, greetings and "
             f"typos, plus {int(NOISE_SHARE * 100)}% unrelated sentences) grouped by "
             "`bot.analytics.grouping.group_texts` in one process: the time of the grouping "
             "alone (the database query is not counted), the process's peak resident memory "
             "after it, the topics found (groups of at least "
             f"{MIN_TOPIC_SIZE} messages), and how they match the themes over the themed "
             "messages (adjusted Rand index and homogeneity; a themed message outside every "
             "topic counts as a group of its own).", "",
             "| messages | distinct texts | seconds | peak memory MiB | topics (themes) | "
             "themed in a topic | unrelated in a topic | adjusted Rand | homogeneity |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m in r["runs"]:
        lines.append(f"| {m['messages']:,} | {m['distinct_texts']:,} | {m['seconds']} | "
                     f"{m['peak_rss_mib']} | {m['topics']} ({m['themes']}) | "
                     f"{m['themed_in_a_topic']} | {m['unrelated_in_a_topic']} | "
                     f"{m['adjusted_rand']} | {m['homogeneity']} |")
    return lines + ["", "The work grows with the distinct texts, not the messages (identical "
                    "texts are grouped once), and Birch leaves more sub-clusters on more texts, "
                    "which are compressed again before the merge. More messages also bridge "
                    "themes that "
                    "share words, so more topics hold more than one theme (the lower "
                    "homogeneity). Faker's random sentences come from a small word list and "
                    "resemble each other, so most of them form topics of their own (\"unrelated "
                    "in a topic\"); they stand for noise in the timing, not for real customers' "
                    "unrelated messages.", ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.topics")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--dry", action="store_true", help="print, do not record")
    args = parser.parse_args(argv)
    result = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": machine(), "load": machine_load(), "runs": []}
    for n in (int(s) for s in args.sizes.split(",") if s):
        run = measure(n)
        print(run, flush=True)
        result["runs"].append(run)
    if not args.dry:
        record("topics", result, TITLE, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
