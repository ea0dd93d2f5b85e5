"""What a command prints, text and JSON, when it does not fit the command's own screen."""
