"""Scheduled report emails for marketers (issue #8).

- `subscriptions`: the marketers' YAML (`senders/report_subscriptions.yml`): who gets which report, when,
  about which period; validated with errors that name the file, the subscription and the field.
- `data`: every read of the warehouse (one small query function per mart, so column names live in one
  place), the quality-gate verdict and freshness, and the `email_log` that makes sending exactly-once.
- `sections`: one section per report (campaigns, engagement, segments, retention, funnel): plain-words
  summary, compact table, chart and CSV detail.
- `charts`: deterministic matplotlib PNGs.
- `compose`: the MIME message (text + HTML alternative, inline images by Content-ID, CSV attachments).
- `delivery`: the outbox (.eml files, the embedded default) or SMTP through Airflow's SmtpHook.

`senders.report_email.send_due_reports` ties them together for the DAG.
"""
