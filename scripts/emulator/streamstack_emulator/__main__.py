"""``python -m streamstack_emulator``: see streamstack_emulator.server."""

from .server import main

main()
