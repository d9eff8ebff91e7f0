"""Sub-commands of the ``eqlens`` CLI, one module each (``register(subparsers)``)."""
