"""The Great Expectations gate computes real observed values and stops on a bad batch."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from expectations.gate import QualityGateFailed, enforce_gate, run_gate


def test_gate_passes_on_a_clean_build(built_warehouse):
    result = run_gate(built_warehouse)
    assert result.passed and result.checked == 7


def test_gate_fails_on_a_member_without_consent_and_says_what_it_saw(built_warehouse, tmp_path):
    warehouse = tmp_path / "bad.duckdb"
    shutil.copy(built_warehouse, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        user_id = con.execute(
            "select user_id from dim_users where not can_email and email is not null limit 1"
        ).fetchone()[0]
        con.execute(
            "insert into segment_members (segment_name, user_id, qualified_at, evaluated_at, email)"
            " select 'recent_buyers', user_id, timestamp '2026-11-01', timestamp '2026-11-01', email"
            " from dim_users where user_id = ?",
            [user_id],
        )
        # a duplicate key, of a user outside every segment so that no other expectation is touched
        con.execute(
            "insert into dim_users select * from dim_users"
            " where user_id not in (select user_id from segment_members) limit 1"
        )
    with pytest.raises(QualityGateFailed) as failure:
        enforce_gate(warehouse)
    message = str(failure.value)
    assert "2 of 7 expectations failed" in message
    assert "segment_members: expect_column_values_to_be_in_set" in message and "observed 1" in message
    assert "dim_users: expect_column_values_to_be_unique" in message
