"""One module per change kind, each implementing bot.changes.kind.ChangeKind."""
