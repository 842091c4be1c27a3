"""What every `pinworks` command group is built with, whichever package owns it.

The `pinworks` CLI mounts each service's command group (entry-point group `pinworks.cli`); those
groups and the CLI's own commands share this plumbing: where the platform is and one-line
failures (`platform`), the lazy console and click-style usage lines (`terminal`), tickets from a
CSV (`tickets_csv`) and option parsing (`options`). Needs the `commands` extra (typer, rich).
"""
