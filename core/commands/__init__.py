"""One module per ``v2m-zero`` subcommand; each defines NAME, HELP, add_arguments(p), run(args)."""
