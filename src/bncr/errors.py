"""User-facing errors: one clear line, no traceback (the CLI catches them)."""


class UserError(Exception):
    """An expected user mistake (bad option, missing file, ...). The message names what is at fault."""
