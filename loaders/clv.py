"""Predicted customer value: BG/NBD (how many more orders) * Gamma-Gamma (how much per order).

Why this is in `loaders/`: it is a Python stage that writes warehouse tables which dbt then reads as
sources, like the other loaders. It cannot be a dbt Python model, because those run on dbt-duckdb but not
on dbt-postgres (DESIGN.md), and the fit must run on both targets. So it reads `fct_orders` and writes
`clv_model_params`, `clv_predictions` and `clv_runs` through SQLAlchemy: `duckdb:///path` (schema `main`) or
`postgresql+psycopg2://...` (the profile's schema).

The module has two layers:

* Pure functions (numpy/scipy, no I/O): `summarise` turns orders into the per-customer summary (x, t_x, T,
  m_x) that both models need; `fit_bgnbd` and `fit_gamma_gamma` find the maximum-likelihood parameters;
  `p_alive`, `expected_purchases`, `expected_average_value` and `predicted_value` score customers.
* The warehouse stage: `run_clv` reads `fct_orders`, fits, scores, and replaces the tables in one transaction,
  or raises when the data give no fit. `record_clv` is the same stage for a pipeline in which CLV is advisory:
  a failed fit empties `clv_model_params` and `clv_predictions` and is recorded in `clv_runs` with its reason,
  instead of failing the run. `predict_for_run` is rekindle_daily's step: record_clv on the settings' target.

Tables (schema `main` on DuckDB, the profile's schema on Postgres; dbt reads them as the source
`rekindle_clv`, and `dim_users` shows the predictions):

* `clv_model_params`: one row per model parameter of the current fit;
* `clv_predictions`: one row per customer with an order up to calibration_end, scored by the current fit;
* `clv_runs`: one row per calibration date, 'fitted' or 'not_fitted' with the reason. The other two tables
  always belong to one calibration date, the one run last (a backfill may run an earlier date): both filled
  when its row says 'fitted', both empty when it says 'not_fitted'.

Models and sources
------------------
BG/NBD: P. S. Fader, B. G. S. Hardie and K. L. Lee (2005), "'Counting Your Customers' the Easy Way: An
Alternative to the Pareto/NBD Model", Marketing Science 24(2), 275-284. While active, a customer buys at
rate lambda (Poisson); after each purchase they drop out with probability p. lambda ~ Gamma(r, alpha) and
p ~ Beta(a, b) across customers. Data per customer: x repeat purchases, the last at t_x, observed until T
(t_x and T measured from the customer's first purchase). Likelihood: the paper's eq. (6), computed in logs
as in Fader, Hardie & Lee, "Implementing the BG/NBD Model for Customer Base Analysis in Excel" (2005 note):

    ln L = A1 + A2 + ln(exp(A3) + delta(x>0) exp(A4))
    A1 = ln Gamma(r+x) - ln Gamma(r) + r ln alpha
    A2 = ln Gamma(a+b) + ln Gamma(b+x) - ln Gamma(b) - ln Gamma(a+b+x)
    A3 = -(r+x) ln(alpha+T)
    A4 = ln a - ln(b+x-1) - (r+x) ln(alpha+t_x)

P(alive): Fader, Hardie & Lee, "Computing P(alive) Using the BG/NBD Model" (2008 note):

    P(alive | x, t_x, T) = 1 / (1 + delta(x>0) a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x))

so a customer with no repeat purchase is alive with probability 1: in the BG/NBD, dropping out can only
happen right after a purchase. Expected purchases in (T, T+t]: the paper's eq. (10),

    E[Y(t) | x, t_x, T] = (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1; z)]
                          / (1 + delta(x>0) a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)),      z = t/(alpha+T+t)

which this module evaluates after Euler's transformation 2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A,C-B;C;z):

    ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1; z) = (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z)

The two are equal, but the right-hand side stays near 1 for every x, while the left multiplies a tiny power
by a huge 2F1 that overflows for customers with hundreds of repeat purchases. (a = 1 exactly is a
removable singularity of the formula and is not handled; a fitted a is never exactly 1.)

Gamma-Gamma: P. S. Fader and B. G. S. Hardie (2013), "The Gamma-Gamma Model of Monetary Value" (note
at brucehardie.com). The value of each transaction is Gamma(p, nu), nu ~ Gamma(q, gamma) across
customers, and spend is independent of the purchase process. For a customer with x repeat transactions
of mean value m_x:

    f(m_x | p, q, gamma, x) = Gamma(px+q) / (Gamma(px) Gamma(q)) * gamma^q m_x^(px-1) x^(px) / (gamma + m_x x)^(px+q)
    E[M | p, q, gamma, m_x, x] = p (gamma + m_x x) / (px + q - 1)
                               = (q-1)/(px+q-1) * p*gamma/(q-1) + px/(px+q-1) * m_x

a weighted mean of the population mean p*gamma/(q-1) and the customer's own m_x. It is fitted on customers
with x > 0 only (m_x is undefined otherwise), and customers with x = 0 get the population mean.

Predicted value = E[Y(horizon)] * E[M]: the expected revenue in the next horizon, undiscounted, with no
margin applied (multiply by a margin and discount downstream if you need profit or a present value).

Data preparation (what reproduces the published CDNOW estimates)
----------------------------------------------------------------
* A customer's orders on the same calendar day (UTC) are one purchase: x counts repeat purchase *days*,
  the first purchase day excluded. Their values are summed.
* Time is in days, then divided by `time_unit_days` (7: weeks, as in the papers). t_x = last - first
  purchase day, T = calibration_end - first purchase day; orders on calibration_end itself count.
* m_x is the mean value of the repeat purchase days (the first purchase is excluded, as in the note).
* Customers with x > 0 but m_x <= 0 (orders with amount 0) are outside the Gamma-Gamma model: they are
  left out of its fit, and their E[M] uses m_x = 0 (negative means are clipped to 0).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, hyp2f1

if TYPE_CHECKING:
    from loaders.settings import Settings

log = logging.getLogger(__name__)

# Log-parameters are kept in [-LOG_BOUND, LOG_BOUND] (about 1e-13 .. 1e13): far outside any sensible fit,
# tight enough that exp() never overflows. A fit that ends on the bound did not find an interior optimum.
LOG_BOUND = 30.0
# Largest |gradient| of the mean negative log-likelihood (in log-parameters) accepted as converged.
GRADIENT_TOLERANCE = 1e-6
# Smallest eigenvalue of that function's Hessian (the information per customer, in log-parameters) accepted
# as an identified optimum. Real fits have 1e-3 or more (CDNOW: 3e-3 for BG/NBD, 1e-2 for Gamma-Gamma); a
# flat ridge gives 1e-7 or less.
HESSIAN_TOLERANCE = 1e-6
_OPTIONS = {"ftol": 1e-15, "gtol": 1e-11, "maxiter": 5000, "maxfun": 20000}


class ConvergenceError(RuntimeError):
    """The maximum-likelihood fit found no interior optimum that the data identify."""


class BGNBDParams(NamedTuple):
    """BG/NBD parameters: purchase rate lambda ~ Gamma(r, alpha) (alpha in time units), dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


class GammaGammaParams(NamedTuple):
    """Gamma-Gamma parameters: transaction value ~ Gamma(p, nu), nu ~ Gamma(q, gamma)."""

    p: float
    q: float
    gamma: float


@dataclass(frozen=True)
class RFMSummary:
    """Per-customer summary over the calibration period, one entry per customer, sorted by customer_id.

    x: repeat purchase days; t_x: last purchase day - first purchase day; T: calibration_end - first purchase
    day (t_x and T in time units of `time_unit_days` days); mean_value: mean value of the repeat purchase
    days (NaN when x = 0).
    """

    customer_id: np.ndarray
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    mean_value: np.ndarray
    calibration_end: date
    time_unit_days: float

    def __len__(self) -> int:
        return len(self.customer_id)


# ------------------------------------------------------------------------------------------ summary


def _columns(orders: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer_id, ordered_at, amount) columns from rows, or from the first three columns of a DataFrame."""
    if hasattr(orders, "columns") and hasattr(orders, "iloc"):  # a pandas DataFrame, without importing pandas
        return tuple(orders.iloc[:, i].to_numpy() for i in range(3))  # type: ignore[return-value]
    rows = list(orders)
    if not rows:
        return np.array([], dtype=object), np.array([], dtype="datetime64[D]"), np.array([], dtype=float)
    if any(len(row) != 3 for row in rows):
        raise ValueError("orders: every row must be (customer_id, ordered_at, amount)")
    ids, ordered_at, amounts = zip(*rows, strict=True)
    return np.asarray(ids), np.asarray(ordered_at), np.asarray(amounts)


def _to_days(values: np.ndarray) -> np.ndarray:
    """Calendar days (datetime64[D]) of dates, naive UTC datetimes, datetime64 values or ISO strings."""
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[D]")
    return np.asarray(values, dtype="datetime64[us]").astype("datetime64[D]")


def summarise(orders: Iterable[Sequence[Any]] | Any, calibration_end: date, time_unit_days: float = 7) -> RFMSummary:
    """Summarise orders into x, t_x, T and m_x per customer, using the orders up to `calibration_end`.

    `orders` holds rows (customer_id, ordered_at, amount) (or is a DataFrame with those three columns first);
    ordered_at is a date, a naive UTC datetime, a datetime64 or an ISO string. Orders after calibration_end
    are ignored; those on it count. Same-day orders of a customer are one purchase with the summed value.
    Customers whose first order is after calibration_end are not in the summary.
    """
    if time_unit_days <= 0:
        raise ValueError(f"time_unit_days must be positive, got {time_unit_days}")
    customer_ids, ordered_at, amounts = _columns(orders)
    days = _to_days(ordered_at)
    amounts = np.asarray(amounts, dtype=float)
    if np.isnat(days).any():
        raise ValueError(f"orders: {int(np.isnat(days).sum())} order(s) without ordered_at")
    end = np.datetime64(calibration_end, "D")
    keep = days <= end
    customer_ids, days, amounts = customer_ids[keep], days[keep], amounts[keep]
    if not np.isfinite(amounts).all():
        raise ValueError(f"orders: {int((~np.isfinite(amounts)).sum())} order(s) with a missing or infinite amount")
    if len(days) == 0:
        raise ValueError(f"no orders on or before calibration_end {calibration_end}")

    ids, customer = np.unique(customer_ids, return_inverse=True)
    # Sort by customer, day and amount: the amount makes the summation order, and so every sum to the last
    # bit, independent of the order in which the warehouse returned the rows.
    order = np.lexsort((amounts, days, customer))
    customer, days, amounts = customer[order], days[order], amounts[order]

    # Merge same-day orders into purchase days.
    new_day = np.ones(len(days), dtype=bool)
    new_day[1:] = (customer[1:] != customer[:-1]) | (days[1:] != days[:-1])
    day_starts = np.flatnonzero(new_day)
    day_customer, day, day_value = customer[day_starts], days[day_starts], np.add.reduceat(amounts, day_starts)

    # Per customer: the first purchase day, the last, and the repeat days between.
    first_day_of_customer = np.ones(len(day), dtype=bool)
    first_day_of_customer[1:] = day_customer[1:] != day_customer[:-1]
    starts = np.flatnonzero(first_day_of_customer)
    purchase_days = np.diff(np.append(starts, len(day)))
    x = purchase_days - 1
    first, last = day[starts], day[starts + purchase_days - 1]
    t_x = (last - first).astype(np.int64) / time_unit_days
    T = (end - first).astype(np.int64) / time_unit_days
    repeat_value = np.add.reduceat(np.where(first_day_of_customer, 0.0, day_value), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_value = np.where(x > 0, repeat_value / x, np.nan)
    return RFMSummary(ids, x.astype(np.int64), t_x, T, mean_value, calibration_end, float(time_unit_days))


# ------------------------------------------------------------------------------------------ fitting


def _as_arrays(*values: Any) -> list[np.ndarray]:
    arrays = [np.asarray(v, dtype=float) for v in values]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise ValueError("the summary arrays must be one-dimensional and of equal length")
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError("the summary arrays must not contain NaN or infinity")
    return arrays


def _bgnbd_objective(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood of the BG/NBD and its gradient with respect to the log-parameters."""
    r, alpha, a, b = np.exp(log_params)
    rx = r + x
    repeat = x > 0
    b_x_1 = np.where(repeat, b + x - 1, 1.0)  # b+x-1 only appears in the delta(x>0) term
    a1 = gammaln(rx) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -rx * np.log(alpha + T)
    a4 = np.where(repeat, np.log(a) - np.log(b_x_1) - rx * np.log(alpha + t_x), -np.inf)
    log_sum = np.logaddexp(a3, a4)
    ll = a1 + a2 + log_sum
    w = np.exp(a4 - log_sum)  # share of the A4 term; 0 when x = 0
    d_r = digamma(rx) - digamma(r) + np.log(alpha) - (1 - w) * np.log(alpha + T) - w * np.log(alpha + t_x)
    d_alpha = r / alpha - (1 - w) * rx / (alpha + T) - w * rx / (alpha + t_x)
    d_a = digamma(a + b) - digamma(a + b + x) + w / a
    d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - w / b_x_1
    gradient = np.array([d_r.sum() * r, d_alpha.sum() * alpha, d_a.sum() * a, d_b.sum() * b])
    n = len(x)
    return -ll.sum() / n, -gradient / n


def bgnbd_log_likelihood(params: Sequence[float], x: Any, t_x: Any, T: Any) -> float:
    """Total BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6 summed over customers)."""
    x, t_x, T = _as_arrays(x, t_x, T)
    value, _ = _bgnbd_objective(np.log(np.asarray(params, dtype=float)), x, t_x, T)
    return -value * len(x)


def _gamma_gamma_objective(log_params: np.ndarray, x: np.ndarray, m: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood of the Gamma-Gamma model and its gradient in log-parameters."""
    p, q, gamma = np.exp(log_params)
    px = p * x
    ll = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(gamma + m * x)
    )
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - np.log(gamma + m * x))
    d_q = digamma(px + q) - digamma(q) + np.log(gamma) - np.log(gamma + m * x)
    d_gamma = q / gamma - (px + q) / (gamma + m * x)
    gradient = np.array([d_p.sum() * p, d_q.sum() * q, d_gamma.sum() * gamma])
    n = len(x)
    return -ll.sum() / n, -gradient / n


def gamma_gamma_log_likelihood(params: Sequence[float], x: Any, mean_value: Any) -> float:
    """Total Gamma-Gamma log-likelihood of (x, m_x) over customers with x > 0 (Fader & Hardie 2013)."""
    x, m = _as_arrays(x, mean_value)
    value, _ = _gamma_gamma_objective(np.log(np.asarray(params, dtype=float)), x, m)
    return -value * len(x)


def _maximise(objective, starts: list[np.ndarray], args: tuple, model: str, names: tuple[str, ...]) -> np.ndarray:
    """Minimise a mean negative log-likelihood from each start (log-parameters); return the best converged
    optimum's parameters, or raise ConvergenceError saying why none converged."""
    best, failures = None, []
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(names)
    for start in starts:
        origin = f"from {dict(zip(names, np.exp(start).round(4).tolist(), strict=True))}"
        with np.errstate(all="ignore"):
            result = minimize(objective, start, args=args, jac=True, method="L-BFGS-B", bounds=bounds, options=_OPTIONS)
        if not np.isfinite(result.fun) or not np.isfinite(result.x).all():
            failures.append(f"{origin}: the likelihood is not finite")
            continue
        # L-BFGS-B may report a line-search failure at the optimum (the objective is flat to rounding there):
        # what counts is a small gradient away from the bounds.
        params = dict(zip(names, np.exp(result.x).round(6).tolist(), strict=True))
        gradient = float(np.max(np.abs(result.jac)))
        at_bound = [name for name, value in zip(names, result.x, strict=True) if abs(value) > LOG_BOUND - 1e-6]
        if at_bound:
            failures.append(f"{origin}: {', '.join(at_bound)} ran off to 0 or infinity ({params})")
        elif gradient > GRADIENT_TOLERANCE:
            failures.append(f"{origin}: stopped at {params} with gradient {gradient:.2e} ({result.message})")
        elif best is None or result.fun < best.fun:
            best = result
    if best is None:
        raise ConvergenceError(f"{model} fit on {len(args[0])} customers did not converge: " + "; ".join(failures))
    # A small gradient is not enough: along a flat ridge (e.g. BG/NBD a -> 0, b -> infinity when nobody seems
    # to drop out) the optimiser stops anywhere. An identified optimum has a clearly positive-definite Hessian.
    eigenvalues, eigenvectors = np.linalg.eigh(_hessian(objective, best.x, args))
    if eigenvalues[0] < HESSIAN_TOLERANCE:
        params = dict(zip(names, np.exp(best.x).round(6).tolist(), strict=True))
        ridge = [name for name, weight in zip(names, eigenvectors[:, 0], strict=True) if abs(weight) > 0.3]
        raise ConvergenceError(
            f"{model} fit on {len(args[0])} customers did not converge: the likelihood is flat at {params} "
            f"along {', '.join(ridge)} (smallest Hessian eigenvalue {eigenvalues[0]:.1e}); the data do not "
            "identify the model"
        )
    return np.exp(best.x)


def _hessian(objective, log_params: np.ndarray, args: tuple, step: float = 1e-4) -> np.ndarray:
    """Hessian of the mean negative log-likelihood in log-parameters: central differences of the gradient."""
    columns = []
    for i in range(len(log_params)):
        shift = np.zeros(len(log_params))
        shift[i] = step
        with np.errstate(all="ignore"):
            columns.append(
                (objective(log_params + shift, *args)[1] - objective(log_params - shift, *args)[1]) / (2 * step)
            )
    hessian = np.column_stack(columns)
    return (hessian + hessian.T) / 2


def fit_bgnbd(x: Any, t_x: Any, T: Any) -> BGNBDParams:
    """Maximum-likelihood BG/NBD parameters (r, alpha, a, b) for customers' (x, t_x, T).

    Maximises Fader, Hardie & Lee (2005) eq. (6), summed over customers, with L-BFGS-B on the logs of the
    parameters (so they stay positive) and the analytic gradient. It starts from a moment-based guess and
    from (1, 1, 1, 1) and keeps the better optimum. A fit is accepted when its gradient is below
    GRADIENT_TOLERANCE, no parameter ran off to 0 or infinity, and the Hessian is clearly positive definite
    (HESSIAN_TOLERANCE); otherwise ConvergenceError says why.
    The data must contain customers with and without repeat purchases, or a and b are not identified.
    """
    x, t_x, T = _as_arrays(x, t_x, T)
    if len(x) == 0:
        raise ValueError("fit_bgnbd: no customers")
    if (x < 0).any() or (np.floor(x) != x).any():
        raise ValueError("fit_bgnbd: x must be non-negative whole numbers")
    if (t_x < 0).any() or (t_x > T).any():
        raise ValueError("fit_bgnbd: need 0 <= t_x <= T")
    if ((x > 0) & (t_x <= 0)).any():
        raise ValueError("fit_bgnbd: a customer with repeat purchases must have t_x > 0")
    if not (x > 0).any():
        raise ValueError(
            "fit_bgnbd: no customer has a repeat purchase, so the dropout parameters a, b are not identified"
        )
    # Guess: r = 1 and alpha such that r/alpha is the observed repeat rate; a = b = 1 (mean dropout 1/2).
    rate = max(x.sum(), 1.0) / max(T.sum(), 1e-3)
    starts = [np.log([1.0, 1.0 / rate, 1.0, 1.0]), np.zeros(4)]
    r, alpha, a, b = _maximise(_bgnbd_objective, starts, (x, t_x, T), "BG/NBD", BGNBDParams._fields)
    return BGNBDParams(float(r), float(alpha), float(a), float(b))


def fit_gamma_gamma(x: Any, mean_value: Any) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma parameters (p, q, gamma) from repeat counts x and mean repeat values m_x.

    Uses the customers with x > 0 and m_x > 0 (the others carry no information on spend per transaction, or
    are outside the model); maximises the note's marginal log-likelihood of m_x (Fader & Hardie 2013) in
    log-parameters with the analytic gradient, starting from p = 1, q = 2, gamma = mean m_x (population mean
    p*gamma/(q-1) = mean m_x) and from (1, 1, 1). Raises ConvergenceError on the same criteria as fit_bgnbd.
    """
    x = np.asarray(x, dtype=float)
    m = np.asarray(mean_value, dtype=float)
    if x.shape != m.shape or x.ndim != 1:
        raise ValueError("fit_gamma_gamma: x and mean_value must be one-dimensional and of equal length")
    use = (x > 0) & np.isfinite(m) & (m > 0)
    x, m = x[use], m[use]
    if len(x) < 3:
        raise ValueError(f"fit_gamma_gamma: {len(x)} customers with repeat purchases of positive value; need 3+")
    starts = [np.log([1.0, 2.0, float(m.mean())]), np.zeros(3)]
    p, q, gamma = _maximise(_gamma_gamma_objective, starts, (x, m), "Gamma-Gamma", GammaGammaParams._fields)
    return GammaGammaParams(float(p), float(q), float(gamma))


# ------------------------------------------------------------------------------------------ scoring


def p_alive(x: Any, t_x: Any, T: Any, r: float, alpha: float, a: float, b: float) -> np.ndarray:
    """P(customer still active at T | x, t_x, T): Fader, Hardie & Lee (2008 note). 1 when x = 0."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    return 1.0 / (1.0 + _dropout_odds(x, t_x, T, r, alpha, a, b))


def _dropout_odds(x, t_x, T, r, alpha, a, b) -> np.ndarray:
    """delta(x>0) a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x): the odds that the customer has dropped out."""
    repeat = x > 0
    b_x_1 = np.where(repeat, b + x - 1, 1.0)
    with np.errstate(over="ignore"):
        odds = a / b_x_1 * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
    return np.where(repeat, odds, 0.0)


def expected_purchases(t: Any, x: Any, t_x: Any, T: Any, r: float, alpha: float, a: float, b: float) -> np.ndarray:
    """Expected number of purchases in (T, T+t] given (x, t_x, T): Fader, Hardie & Lee (2005) eq. (10).

    t is in the same time unit as t_x and T. The 2F1 term is evaluated in its Euler-transformed form (see the
    module docstring), which does not overflow for customers with many purchases.
    """
    t, x, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (t, x, t_x, T)))
    if (t < 0).any():
        raise ValueError("expected_purchases: t must be >= 0")
    c = a + b + x - 1
    z = t / (alpha + T + t)
    # ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; c; z) = (1-z)^(a-1) * 2F1(c-r-x, a-1; c; z)
    tail = np.exp((a - 1) * np.log1p(-z)) * hyp2f1(a + b - 1 - r, a - 1, c, z)
    numerator = c / (a - 1) * (1 - tail)
    return numerator / (1.0 + _dropout_odds(x, t_x, T, r, alpha, a, b))


def expected_average_value(x: Any, mean_value: Any, p: float, q: float, gamma: float) -> np.ndarray:
    """E[value per transaction | x, m_x]: Fader & Hardie (2013), p(gamma + m_x x)/(px + q - 1).

    Customers with x = 0 (whose m_x is undefined, e.g. NaN) get the population mean p*gamma/(q-1); m_x below 0 is
    taken as 0. Needs q > 1 (otherwise the population mean value is infinite).
    """
    if q <= 1:
        raise ValueError(f"expected_average_value: q = {q} <= 1, the Gamma-Gamma mean value is infinite")
    x = np.asarray(x, dtype=float)
    m = np.where(x > 0, np.clip(np.nan_to_num(np.asarray(mean_value, dtype=float), nan=0.0), 0.0, None), 0.0)
    return p * (gamma + m * x) / (p * x + q - 1)


def predicted_value(
    t: Any,
    x: Any,
    t_x: Any,
    T: Any,
    mean_value: Any,
    bgnbd: BGNBDParams | Sequence[float],
    gamma_gamma: GammaGammaParams | Sequence[float],
) -> np.ndarray:
    """Expected revenue in (T, T+t]: expected_purchases * expected_average_value (no discounting, no margin)."""
    return expected_purchases(t, x, t_x, T, *bgnbd) * expected_average_value(x, mean_value, *gamma_gamma)


# ------------------------------------------------------------------------------------------ warehouse stage


@dataclass(frozen=True)
class ClvRun:
    """What run_clv fitted and wrote."""

    calibration_end: date
    horizon_days: int
    customers: int
    repeat_customers: int
    bgnbd: BGNBDParams
    gamma_gamma: GammaGammaParams
    fit_seconds: float


FITTED, NOT_FITTED = "fitted", "not_fitted"


@dataclass(frozen=True)
class ClvOutcome:
    """What record_clv did for one calibration date: the row it wrote to clv_runs, and the fit if there was one."""

    calibration_end: date
    horizon_days: int
    status: str  # FITTED | NOT_FITTED
    reason: str | None  # why there is no fit; None when fitted
    customers: int  # customers with an order up to calibration_end
    repeat_customers: int  # of them, with repeat purchases of positive value (the Gamma-Gamma sample)
    fit: ClvRun | None = None

    def summary(self) -> dict[str, Any]:
        """The outcome as JSON-ready values (an Airflow XCom): the clv_runs row, and the parameters when fitted."""
        out: dict[str, Any] = {
            "calibration_end": self.calibration_end.isoformat(),
            "horizon_days": self.horizon_days,
            "status": self.status,
            "reason": self.reason,
            "customers": self.customers,
            "repeat_customers": self.repeat_customers,
        }
        if self.fit is not None:
            out["bgnbd"] = self.fit.bgnbd._asdict()
            out["gamma_gamma"] = self.fit.gamma_gamma._asdict()
        return out


def _tables(schema: str, params_table: str, predictions_table: str, runs_table: str):
    import sqlalchemy as sa

    metadata = sa.MetaData(schema=schema)
    params = sa.Table(
        params_table,
        metadata,
        sa.Column("model", sa.Text, nullable=False),  # bgnbd | gamma_gamma
        sa.Column("parameter", sa.Text, nullable=False),  # r, alpha, a, b | p, q, gamma
        sa.Column("value", sa.Double, nullable=False),
        sa.Column("calibration_end", sa.Date, nullable=False),
        sa.Column("customers", sa.Integer, nullable=False),  # customers the model was fitted on
        sa.Column("fitted_at_as_of", sa.Date, nullable=False),  # = calibration_end, never the wall clock
        sa.Column("time_unit_days", sa.Integer, nullable=False),  # alpha is per this many days
    )
    predictions = sa.Table(
        predictions_table,
        metadata,
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("frequency", sa.Integer, nullable=False),  # x: repeat purchase days
        sa.Column("recency", sa.Double, nullable=False),  # t_x, in time units
        sa.Column("t", sa.Double, nullable=False),  # T (lower case: no quoting needed on Postgres)
        sa.Column("p_alive", sa.Double, nullable=False),
        sa.Column("expected_purchases", sa.Double, nullable=False),  # in the next horizon_days
        sa.Column("expected_average_value", sa.Double, nullable=False),
        sa.Column("predicted_value", sa.Double, nullable=False),
        sa.Column("calibration_end", sa.Date, nullable=False),
        sa.Column("horizon_days", sa.Integer, nullable=False),
        sa.Column("time_unit_days", sa.Integer, nullable=False),
    )
    # One row per calibration date (a rerun replaces that date's row): whether the two tables above hold that
    # date's fit, and if not, why they are empty. No primary key: DuckDB checks a key eagerly, so a delete
    # and a re-insert of the same key in one transaction would violate it.
    runs = sa.Table(
        runs_table,
        metadata,
        sa.Column("calibration_end", sa.Date, nullable=False),
        sa.Column("horizon_days", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),  # fitted | not_fitted
        sa.Column("reason", sa.Text),  # why not fitted; null when fitted
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("repeat_customers", sa.Integer, nullable=False),
    )
    return metadata, params, predictions, runs


def _bulk_insert(conn, table, frame, chunksize: int) -> None:
    """Append a DataFrame to a table inside the connection's transaction, by the engine's bulk path.

    DuckDB: the frame as an Arrow table, registered on the connection and inserted with one
    `insert ... select`. Postgres (psycopg2): CSV through `COPY ... FROM STDIN` (floats are written with
    Python's shortest round-trip repr, so they arrive bit for bit; every text is quoted, so "" stays "").
    Any other SQLAlchemy dialect: pandas multi-row inserts in chunks.
    """
    frame = frame[[column.name for column in table.columns]]
    preparer = conn.dialect.identifier_preparer
    target = preparer.format_table(table)
    columns = ", ".join(preparer.quote(column.name) for column in table.columns)
    driver = conn.connection.driver_connection
    if conn.dialect.name == "duckdb":
        import duckdb
        import pyarrow as pa

        view = f"_rekindle_clv_{table.name}"
        driver.register(view, pa.Table.from_pandas(frame, preserve_index=False))
        try:
            driver.execute(f"insert into {target} ({columns}) select {columns} from {preparer.quote(view)}")
        finally:
            # After a failed insert the transaction is aborted and unregister fails too: keep the first error.
            with contextlib.suppress(duckdb.Error):
                driver.unregister(view)
    elif conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2":
        import csv
        import io

        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, header=False, quoting=csv.QUOTE_NONNUMERIC)
        buffer.seek(0)
        with driver.cursor() as cursor:
            cursor.copy_expert(f"copy {target} ({columns}) from stdin with (format csv)", buffer)
    else:
        frame.to_sql(
            table.name, conn, schema=table.schema, if_exists="append", index=False, method="multi", chunksize=chunksize
        )


def _repeat_customers(summary: RFMSummary) -> int:
    """Customers in the Gamma-Gamma sample: repeat purchases of positive mean value."""
    return int(((summary.x > 0) & (summary.mean_value > 0)).sum())


def _fit_and_score(
    summary: RFMSummary, horizon_days: int, time_unit_days: int, names: tuple[str, str]
) -> tuple[ClvRun, Any, Any]:
    """Fit both models on a summary and score its customers: (what was fitted, params rows, predictions rows).

    Raises ConvergenceError when a fit fails and ValueError when the data cannot identify a model or a value
    comes out non-finite; touches no warehouse.
    """
    import pandas as pd

    calibration_end = summary.calibration_end
    started = time.perf_counter()
    bgnbd = fit_bgnbd(summary.x, summary.t_x, summary.T)
    gamma_gamma = fit_gamma_gamma(summary.x, summary.mean_value)
    fit_seconds = time.perf_counter() - started
    repeat = _repeat_customers(summary)
    horizon = horizon_days / time_unit_days
    purchases = expected_purchases(horizon, summary.x, summary.t_x, summary.T, *bgnbd)
    average = expected_average_value(summary.x, summary.mean_value, *gamma_gamma)

    params_rows = pd.DataFrame(
        [("bgnbd", name, value, len(summary)) for name, value in bgnbd._asdict().items()]
        + [("gamma_gamma", name, value, repeat) for name, value in gamma_gamma._asdict().items()],
        columns=["model", "parameter", "value", "customers"],
    ).assign(calibration_end=calibration_end, fitted_at_as_of=calibration_end, time_unit_days=time_unit_days)
    predictions = pd.DataFrame(
        {
            "user_id": summary.customer_id.astype(str).astype(object),
            "frequency": summary.x,
            "recency": summary.t_x,
            "t": summary.T,
            "p_alive": p_alive(summary.x, summary.t_x, summary.T, *bgnbd),
            "expected_purchases": purchases,
            "expected_average_value": average,
            "predicted_value": purchases * average,
            "calibration_end": calibration_end,
            "horizon_days": horizon_days,
            "time_unit_days": time_unit_days,
        }
    )
    for name, frame_out in zip(names, (params_rows, predictions), strict=True):
        numeric = frame_out.select_dtypes("number")
        bad = [column for column in numeric.columns if not np.isfinite(numeric[column].to_numpy(float)).all()]
        if bad:
            raise ValueError(f"CLV as of {calibration_end}: {name} would get non-finite values in {bad}")
    run = ClvRun(calibration_end, horizon_days, len(summary), repeat, bgnbd, gamma_gamma, fit_seconds)
    return run, params_rows, predictions


def _clv_stage(
    engine_url: Any,
    calibration_end: date,
    horizon_days: int,
    *,
    advisory: bool,
    schema: str,
    orders_table: str,
    params_table: str,
    predictions_table: str,
    runs_table: str,
    time_unit_days: int,
    chunksize: int,
) -> ClvOutcome:
    """run_clv (advisory=False) and record_clv (advisory=True): read, fit, score and write in one transaction."""
    import pandas as pd
    import sqlalchemy as sa

    if isinstance(calibration_end, datetime):  # a datetime is a date too: keep only the day
        calibration_end = calibration_end.date()
    if horizon_days < 0:
        raise ValueError(f"horizon_days must be >= 0, got {horizon_days}")
    orders = sa.table(orders_table, sa.column("user_id"), sa.column("ordered_at"), sa.column("amount"), schema=schema)
    cutoff = datetime.combine(calibration_end + timedelta(days=1), datetime.min.time())
    metadata, params_t, predictions_t, runs_t = _tables(schema, params_table, predictions_table, runs_table)

    engine = sa.create_engine(engine_url)
    try:
        with engine.begin() as conn:
            query = sa.select(orders.c.user_id, orders.c.ordered_at, orders.c.amount).where(
                orders.c.ordered_at < sa.bindparam("cutoff", cutoff, type_=sa.DateTime())
            )
            frame = pd.read_sql(query, conn, coerce_float=True)
            ordered_at = pd.to_datetime(frame["ordered_at"], utc=True).dt.tz_localize(None)
            rows = pd.DataFrame(
                {
                    "user_id": frame["user_id"].astype(str).to_numpy(dtype=object),
                    "ordered_at": ordered_at.to_numpy(),
                    "amount": frame["amount"].to_numpy(dtype=float),
                }
            )
            summary = None
            # Only the computation is advisory: a warehouse error above or below still fails the stage.
            try:
                if rows.empty:
                    raise ValueError(f"{schema}.{orders_table} has no orders up to {calibration_end}")
                summary = summarise(rows, calibration_end, time_unit_days)
                fit, params_rows, predictions = _fit_and_score(
                    summary, horizon_days, time_unit_days, (params_table, predictions_table)
                )
            except (ConvergenceError, ValueError) as exc:
                if not advisory:
                    raise
                outcome = ClvOutcome(
                    calibration_end,
                    horizon_days,
                    NOT_FITTED,
                    str(exc),
                    int(rows["user_id"].nunique()),
                    _repeat_customers(summary) if summary is not None else 0,
                )
            else:
                outcome = ClvOutcome(
                    calibration_end, horizon_days, FITTED, None, fit.customers, fit.repeat_customers, fit
                )

            metadata.create_all(conn, checkfirst=True)
            # Parameters and predictions always belong to one calibration: without a fit both end up empty,
            # never left over from another date; clv_runs says why.
            conn.execute(params_t.delete())
            conn.execute(predictions_t.delete())
            if outcome.fit is not None:
                _bulk_insert(conn, params_t, params_rows, chunksize)
                _bulk_insert(conn, predictions_t, predictions, chunksize)
            conn.execute(runs_t.delete().where(runs_t.c.calibration_end == calibration_end))
            conn.execute(
                runs_t.insert().values(
                    calibration_end=calibration_end,
                    horizon_days=horizon_days,
                    status=outcome.status,
                    reason=outcome.reason,
                    customers=outcome.customers,
                    repeat_customers=outcome.repeat_customers,
                )
            )
    finally:
        engine.dispose()

    if outcome.fit is None:
        log.warning(
            "CLV as of %s not fitted (advisory: the run goes on; %s and %s are empty, %s says why): %s",
            calibration_end,
            params_table,
            predictions_table,
            runs_table,
            outcome.reason,
        )
    else:
        fit = outcome.fit
        log.info(
            "CLV as of %s: %d customers (%d with repeat purchases); BG/NBD %s; Gamma-Gamma %s; fitted in %.3f s",
            calibration_end,
            fit.customers,
            fit.repeat_customers,
            fit.bgnbd,
            fit.gamma_gamma,
            fit.fit_seconds,
        )
    return outcome


def run_clv(
    engine_url: Any,
    calibration_end: date,
    horizon_days: int = 90,
    *,
    schema: str = "main",
    orders_table: str = "fct_orders",
    params_table: str = "clv_model_params",
    predictions_table: str = "clv_predictions",
    runs_table: str = "clv_runs",
    time_unit_days: int = 7,
    chunksize: int = 2000,
) -> ClvRun:
    """Fit BG/NBD and Gamma-Gamma on `<schema>.fct_orders` up to calibration_end and write the tables.

    engine_url (a string or a SQLAlchemy URL): `duckdb:///path/to/rekindle.duckdb` (schema `main`) or
    `postgresql+psycopg2://...` (schema: the dbt profile's). Reads (user_id, ordered_at, amount) of the orders
    whose ordered_at (UTC) is before the end of calibration_end, fits both models, scores every customer for
    the next horizon_days, and in ONE transaction creates the tables if needed, replaces the content of
    clv_model_params and clv_predictions and replaces calibration_end's row of clv_runs (status 'fitted').
    Inserts are bulk: Arrow on DuckDB, COPY on Postgres, pandas multi-row inserts of `chunksize` rows on
    other engines. A rerun therefore leaves exactly what one clean run leaves, and nothing depends on the
    wall clock: fitted_at_as_of is calibration_end. Returns what was fitted; raises ValueError when there are
    no orders and ConvergenceError when a fit fails, writing nothing in either case (record_clv records
    those outcomes instead).
    """
    outcome = _clv_stage(
        engine_url,
        calibration_end,
        horizon_days,
        advisory=False,
        schema=schema,
        orders_table=orders_table,
        params_table=params_table,
        predictions_table=predictions_table,
        runs_table=runs_table,
        time_unit_days=time_unit_days,
        chunksize=chunksize,
    )
    if outcome.fit is None:  # cannot happen: a strict run raises instead of recording a failure
        raise RuntimeError(f"CLV as of {calibration_end}: no fit and no error")
    return outcome.fit


def record_clv(
    engine_url: Any,
    calibration_end: date,
    horizon_days: int = 90,
    *,
    schema: str = "main",
    orders_table: str = "fct_orders",
    params_table: str = "clv_model_params",
    predictions_table: str = "clv_predictions",
    runs_table: str = "clv_runs",
    time_unit_days: int = 7,
    chunksize: int = 2000,
) -> ClvOutcome:
    """run_clv for a pipeline in which CLV is advisory: a failed fit is an outcome, not an error.

    When the data give no fit (no orders up to calibration_end, or either model does not converge or is
    not identified; a shop with a few weeks of history is the usual case), the same transaction empties
    clv_model_params and clv_predictions (so they never show another date's fit) and writes
    calibration_end's clv_runs row with status 'not_fitted' and the reason, and a warning is logged.
    Anything else (the warehouse unreachable, fct_orders missing, a failed write) still raises.
    """
    return _clv_stage(
        engine_url,
        calibration_end,
        horizon_days,
        advisory=True,
        schema=schema,
        orders_table=orders_table,
        params_table=params_table,
        predictions_table=predictions_table,
        runs_table=runs_table,
        time_unit_days=time_unit_days,
        chunksize=chunksize,
    )


# ------------------------------------------------------------------------------------------ the daily run


def calibration_end_for(interval_end: datetime) -> date:
    """The calibration date of a run: the last full UTC day before its data interval end.

    For the daily schedule (interval end at midnight) that is the interval's day, the day `rekindle_as_of`
    ends. An interval end during a day (a manual run at a time) gives the day before: the partial day
    would count as a whole day of observation in T.
    """
    if interval_end.tzinfo is not None:
        interval_end = interval_end.astimezone(UTC).replace(tzinfo=None)
    return interval_end.date() - timedelta(days=1)


def warehouse_url(settings: Settings) -> tuple[Any, str]:
    """(SQLAlchemy URL, schema) of the warehouse dbt builds for the settings' target.

    duckdb: the REKINDLE_WAREHOUSE file (an absolute path), schema main. postgres: the REKINDLE_PG_*
    variables with the defaults of dbt_project/profiles.yml, schema REKINDLE_PG_SCHEMA (the profile's schema,
    where the marts are). The URL object keeps the password out of its repr and of the logs.
    """
    import sqlalchemy as sa

    if settings.target == "duckdb":
        return sa.URL.create("duckdb", database=str(Path(settings.warehouse).resolve())), "main"
    if settings.target == "postgres":
        from loaders.settings import postgres_params, postgres_schema

        params = postgres_params()
        url = sa.URL.create(
            "postgresql+psycopg2",
            username=params["user"],
            password=params.get("password"),
            host=params["host"],
            port=int(params["port"]),
            database=params["dbname"],
        )
        return url, postgres_schema()
    raise ValueError(f"REKINDLE_TARGET={settings.target!r}: the CLV stage runs on 'duckdb' or 'postgres'")


def predict_for_run(settings: Settings, calibration_end: date, horizon_days: int) -> ClvOutcome:
    """The daily pipeline's CLV step (rekindle_daily's predict_clv): record_clv on the settings' warehouse."""
    url, schema = warehouse_url(settings)
    return record_clv(url, calibration_end, horizon_days, schema=schema)
