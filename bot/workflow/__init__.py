"""The rollback workflow: propose → confirm/cancel → execute → verify.

Each step moves the rollback's state with a conditional update, so a retried or
duplicated job does nothing twice. A Confirm runs execute and verify inline in its
own job; the `execute` and `verify` jobs are how recovery resumes a rollback whose
job died (bot/workflow/recovery.py).
"""
