"""The shipped audiences file, and the errors that name the audience entry and field at fault."""

from __future__ import annotations

import pytest

from senders.audiences import AudienceConfigError, load_audiences


def test_shipped_audiences_validate():
    assert [a.name for a in load_audiences()] == ["recent_buyers_csv"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: a, segment: s, destination: fax, fields: [email]}", "audience #1 (a): field 'destination' must be"),
        ("{name: a, segment: s, destination: file, fields: [password]}", "field 'fields' has unknown ['password']"),
        ("{name: A-b, segment: s, destination: file, fields: [email]}", "field 'name' must be snake_case"),
        ("{name: a, destination: file, fields: [email]}", "audience #1: field 'segment' is required"),
    ],
)
def test_audience_errors_name_the_entry_and_field(tmp_path, entry, message):
    path = tmp_path / "audiences.yml"
    path.write_text(f"audiences:\n  - {entry}\n")
    with pytest.raises(AudienceConfigError) as error:
        load_audiences(path)
    assert message in str(error.value) and "audiences.yml" in str(error.value)
