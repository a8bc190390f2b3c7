"""`python -m bot.rasa_server run ...`: Rasa's own command line (the same arguments as `rasa`),
with bot/rasa_patches.py applied first. The launcher starts the Rasa server through it."""

from __future__ import annotations


def main() -> None:
    """Patch, then hand over to `rasa` with this process's arguments."""
    from bot import rasa_patches

    rasa_patches.apply()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
