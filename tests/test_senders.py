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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("audiences: [", "audiences.yml: not valid YAML"),
        ("audiences: {a: 1}", "audiences.yml: must hold 'audiences:' with a list of audience entries"),
        ("audiences: [just_a_name]", "audiences.yml, audience #1: must be a mapping"),
        (
            "audiences:\n  - {name: a, segment: s, destination: file, fields: [email]}\n"
            "  - {name: a, segment: t, destination: file, fields: [email]}",
            "audiences.yml, audience #2, audience 'a': the name is already used in audiences.yml, audience #1",
        ),
    ],
)
def test_file_level_errors_name_the_file_and_entry(tmp_path, text, message):
    """The frame every edited YAML file shares (loaders/config_file.py), seen through the audiences file."""
    path = tmp_path / "audiences.yml"
    path.write_text(text + "\n")
    with pytest.raises(AudienceConfigError, match=message.replace("[", r"\[")):
        load_audiences(path)
