"""What happens after a commit: one package per trigger kind."""
