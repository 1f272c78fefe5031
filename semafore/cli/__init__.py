"""The ``semafore`` command line (click); each sub-command lives in its own module."""
