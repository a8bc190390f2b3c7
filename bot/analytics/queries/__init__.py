"""The review console's queries on the conversation log, one concept a module:

- `filters`: the filter model (`Filters`, shared with the KPI dashboard), sort keys, and the
  values the console offers (`options`);
- `search`: full-text search in the messages;
- `listing`: the filtered, sorted, paginated list (and every match, for the exports);
- `conversation`: one conversation with its transcript, intents, tags and notes;
- `curation`: the CX lead's tags, notes, reviewed flag and intent annotations;
- `export`: the CSV and JSON exports;
- `reveal`: the audited reveal of the raw transcript (admin only).

Everything read here is the masked log (`bot.analytics.models`): notes are masked on the way in
too, so no export or page of the console holds personal data. Only `reveal.reveal_lines` works
on the raw tracker events. `bot.desk.console` uses the names below.
"""

from bot.analytics.queries.conversation import NotFound, get_conversation
from bot.analytics.queries.curation import (
    add_note,
    add_tag,
    annotate,
    remove_annotation,
    remove_tag,
    set_reviewed,
)
from bot.analytics.queries.export import (
    LIST_FIELDS,
    export_conversation_csv,
    export_conversation_json,
    export_list_csv,
    export_list_json,
)
from bot.analytics.queries.filters import (
    CUSTOMER_CODE,
    Filters,
    domain_intents,
    options,
)
from bot.analytics.queries.listing import Page, iter_conversations, list_conversations
from bot.analytics.queries.reveal import record_reveal, reveal_lines, reveal_window
from bot.analytics.queries.search import accent_variants, fts5_query, search_words

__all__ = ["Filters", "Page", "NotFound", "list_conversations", "iter_conversations",
           "get_conversation", "add_tag", "remove_tag", "add_note", "set_reviewed", "annotate",
           "remove_annotation", "export_list_csv", "export_list_json",
           "export_conversation_json", "export_conversation_csv", "reveal_window",
           "reveal_lines", "record_reveal", "domain_intents", "options", "search_words",
           "fts5_query", "accent_variants", "CUSTOMER_CODE", "LIST_FIELDS"]
