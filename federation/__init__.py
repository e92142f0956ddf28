"""The operator commands over every stack of this project: ``python -m federation <command>``
(``__main__.py`` dispatches, one module per command).

``stacks`` reads stack files and ``revision`` reads git: ``diff`` and ``affected`` need no Pulumi
backend and no cluster. ``up``, ``preview``, ``destroy``, ``verify`` and ``rotate-gossip-key`` run
the pulumi CLI against the backend and reach each stack's cluster.
"""
