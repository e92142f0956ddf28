"""Commands over every stack of this project at once: ``python -m federation <command>``.

One module per command (``diff``, ``affected``); ``stacks`` reads stack files and ``revision``
reads git, so that no command needs a Pulumi backend or a cluster to know what the stacks are.
"""
