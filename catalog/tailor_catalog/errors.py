"""The one error the command reports: a sentence naming what is wrong."""


class CatalogError(Exception):
    """Printed as one line by the command, which then exits non-zero."""
