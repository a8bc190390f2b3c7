"""Personal data masked in every log line of every Sportello process.

Rasa and its libraries log message texts in places Sportello does not control (a failed REST
turn logs the text, warnings quote the message they are about). Rather than chase each one,
every log record is rendered and masked with the conversation log's own redaction
(`bot.analytics.redact`) when it is created, whatever logger or handler it goes to; Python
warnings are routed through logging, so they are masked too.
"""

from __future__ import annotations

import logging

_installed = False


def install() -> None:
    """Mask every log record of this process from now on (idempotent)."""
    global _installed
    if _installed:
        return
    from bot.analytics.redact import redact

    previous = logging.getLogRecordFactory()

    formatter = logging.Formatter()

    def masked_record(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: keep its text, masked
            message = str(record.msg)
        record.msg, record.args = redact(message), ()
        if record.exc_info:  # an exception's text quotes values too: rendered, then masked
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(masked_record)
    logging.captureWarnings(True)
    _installed = True
