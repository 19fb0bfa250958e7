"""The rollback workflow: propose → confirm/cancel → execute → verify.

Each step is a procrastinate job (bot/jobs.py) that moves the rollback's state
with a conditional update, so a retried or duplicated job does nothing twice.
"""
