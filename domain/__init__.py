"""Pure loan-servicing domain: money, calendars, schedules, allocation, delinquency, aggregates.

Nothing here imports SQLAlchemy, FastAPI, APScheduler or settings.
"""
