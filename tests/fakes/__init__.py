"""Local servers that speak each destination's documented API, for the senders' tests.

Import them as `from fakes.sendgrid import FakeSendGrid` (pytest puts `tests/` on `sys.path` because `tests/`
is not a package); fixtures live in `fakes.fixtures`.
"""
