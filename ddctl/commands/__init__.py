"""One module per subcommand: parsing and rendering only."""
