"""Where graphc's messages go: the ``graphc`` logger, and the console handler it has until
the application takes its messages over.

graphc reports through :mod:`logging` (epoch lines and resumption at INFO, what a user
should know at WARNING), as libraries do. So that a script or a notebook that configured no
logging still sees its training, the ``graphc`` logger starts with one handler of its own,
as pip's and Hugging Face's loggers do: INFO lines to standard output, warnings and errors to
standard error (both looked up when a message is written, so redirections and test capture
see them), written through ``tqdm.write`` so that they never tear a progress bar.
``use_logging()`` hands the messages to the application's own configuration instead.
"""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm

LOGGER = logging.getLogger("graphc")


class ConsoleHandler(logging.Handler):
    """INFO and below to stdout as they are; warnings to stderr as ``warning: ...``; errors
    to stderr as they are (they name their command or place themselves)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.ERROR:
                stream = sys.stderr
            elif record.levelno >= logging.WARNING:
                stream, text = sys.stderr, f"warning: {text}"
            else:
                stream = sys.stdout
            tqdm.write(text, file=stream)
            stream.flush()
        except Exception:  # logging's contract: a handler reports its failure, never raises
            self.handleError(record)


CONSOLE = ConsoleHandler()
if not LOGGER.handlers:
    LOGGER.addHandler(CONSOLE)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False


def use_logging() -> None:
    """Send graphc's messages to the application's logging configuration (the root
    logger's handlers) instead of graphc's own console handler."""
    LOGGER.removeHandler(CONSOLE)
    LOGGER.propagate = True
    LOGGER.setLevel(logging.NOTSET)
