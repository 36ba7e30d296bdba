"""What a command does end to end, on the library (DESIGN §2): the CLI parses and prints, these
modules do. Nothing is imported here, so a command pays only for the module it uses."""
