"""Read models built from the event log: one module per read model, plus the runner."""
