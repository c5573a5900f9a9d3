"""When end of day runs and which business date it closes (APScheduler); it calls the
application, never the domain's rules directly."""

from schedulers.scheduler import run_forever, start_scheduler

__all__ = ["run_forever", "start_scheduler"]
