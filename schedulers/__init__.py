"""When end of day runs and which business date it closes (APScheduler); the job calls
``Ledger.close_business_days`` on the ledger its face hands it, never the domain directly."""

from schedulers.scheduler import run_forever, start_scheduler

__all__ = ["run_forever", "start_scheduler"]
