"""Rollbacks: the state machine's data (model) and its Postgres store."""
