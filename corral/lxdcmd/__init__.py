"""The subcommands of `corrald`, LXD's `lxd` command line (flags, output formats, exit codes of LXD 5.0.2).

cli.py: the command group (LXD's error texts and exit code 1, global flags accepted before or after
the subcommand); admin.py: version, waitready, shutdown, import, cluster, LXD's internal commands;
init.py: init; sql.py: sql; activate.py: activateifneeded; recover.py: recover.
"""
