"""The data-quality gate between the marts and anything that leaves the warehouse.

Great Expectations' SQL engine cannot run through duckdb-engine (it closes its connection before
fetching; DESIGN.md), so each checked table is read with DuckDB into pandas and validated with GX's
pandas data source, which computes real observed values. The suites here are the skeleton's; issue
#9 widens them (raw batches, attribution, audience payloads, row-count bounds, freshness).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)


@dataclass
class GateResult:
    failures: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def passed(self) -> bool:
        return not self.failures


class QualityGateFailed(RuntimeError):
    pass


def _emailed_segments() -> list[str]:
    """Segments whose members' email addresses leave the warehouse (an audience sends the email field)."""
    from senders.audiences import load_audiences

    return sorted({a.segment for a in load_audiences() if "email" in a.fields})


def _suites():
    """(query, parameters, expectations) per table; built lazily because importing GX takes seconds."""
    import great_expectations.expectations as gxe

    emailed = _emailed_segments()
    return {
        "dim_users": (
            "select user_id, email, can_email from main.dim_users",
            [],
            [
                gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
                gxe.ExpectColumnValuesToBeUnique(column="user_id"),
                gxe.ExpectTableRowCountToBeBetween(min_value=1),
            ],
        ),
        "segment_members": (
            # Consent is re-checked at the gate: a member whose email an audience sends must be emailable.
            "select m.segment_name, m.user_id, m.email, u.can_email"
            " from main.segment_members m left join main.dim_users u using (user_id)"
            f" where m.segment_name in ({', '.join('?' * len(emailed)) or 'null'})",
            emailed,
            [
                gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
                gxe.ExpectColumnValuesToNotBeNull(column="email"),
                gxe.ExpectColumnValuesToBeInSet(column="can_email", value_set=[True]),
                gxe.ExpectCompoundColumnsToBeUnique(column_list=["segment_name", "user_id"]),
            ],
        ),
    }


def run_gate(warehouse: Path) -> GateResult:
    """Validate every suite; a failure names the table, the expectation and what was observed."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # task logs, not terminals
    source = context.data_sources.add_pandas("rekindle_warehouse")
    result = GateResult()
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        for table, (query, parameters, expectations) in _suites().items():
            frame = con.execute(query, parameters).df()
            batch = (
                source.add_dataframe_asset(table)
                .add_batch_definition_whole_dataframe(table)
                .get_batch(batch_parameters={"dataframe": frame})
            )
            for expectation in expectations:
                outcome = batch.validate(expectation)
                result.checked += 1
                if not outcome.success:
                    observed = outcome.result.get("observed_value", outcome.result.get("unexpected_count"))
                    sample = outcome.result.get("partial_unexpected_list")
                    result.failures.append(
                        f"{table}: {expectation.expectation_type} {expectation.configuration.kwargs}"
                        f" failed (observed {observed!r}{', e.g. ' + repr(sample[:5]) if sample else ''})"
                    )
    finally:
        con.close()
    for failure in result.failures:
        log.error("quality gate: %s", failure)
    return result


def enforce_gate(warehouse: Path) -> GateResult:
    """Run the gate and raise (stopping downstream senders) when any expectation fails."""
    result = run_gate(warehouse)
    if not result.passed:
        raise QualityGateFailed(
            f"{len(result.failures)} of {result.checked} expectations failed: " + "; ".join(result.failures)
        )
    return result
