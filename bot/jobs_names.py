"""Job (procrastinate task) names, apart from bot/jobs.py so workflow steps can
defer the next step without importing the job table (which imports them)."""

LIST_REVISIONS = "rollbot.list_revisions"
PROPOSE = "rollbot.propose"
CONFIRM = "rollbot.confirm"
CANCEL = "rollbot.cancel"
EXECUTE = "rollbot.execute"
VERIFY = "rollbot.verify"
HISTORY = "rollbot.history"
MAINTENANCE = "rollbot.maintenance"
BASELINE = "rollbot.baseline"
ANALYSE = "rollbot.analyse"
VERIFY_NOW = "rollbot.verify_now"
