"""One module per ``stridetwin`` subcommand."""
