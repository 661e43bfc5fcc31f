"""Meeting scripts: the default one loads; bad scripts say where and why."""

from __future__ import annotations

import pytest

from bot.emulator.script import DEFAULT_SCRIPT, ScriptError, load_script, parse_script


def test_default_script_has_three_talking_participants_with_video():
    s = load_script()
    assert s.source == DEFAULT_SCRIPT
    assert [p.name for p in s.participants] == ["Alice", "Bob", "Carol"]
    assert all(p.say and p.has_video for p in s.participants)
    assert 15 <= s.duration_s <= 30
    assert "fox" in s.participant("Bob").words()
    assert s.participant("Bob").dtmf[0].digits == "42#"
    assert not s.without_video().participants[0].has_video
    assert s.with_duration(5).duration_s == 5


def _one(**p):
    return {"meeting": {"duration_s": 10}, "participant": [{"name": "A", **p}]}


@pytest.mark.parametrize("data, where", [
    ({"meeting": {"duration_s": 10}}, "at least one"),
    (_one(name=""), "participant[0].name"),
    (_one(width=641), "even"),
    (_one(fps="fast"), "participant[0].fps: expected a number"),
    (_one(join_s=5, leave_s=4), "leave_s"),
    (_one(say=[{"at_s": 1}]), "say[0]: needs text or wav"),
    (_one(say=[{"at_s": 11, "text": "late"}]), "say[0].at_s"),
    (_one(dtmf=[{"at_s": 1, "digits": "12x"}]), "dtmf[0].digits"),
    (_one(video="/no/such/file.mp4"), "file not found"),
    (_one(colour="red"), "unknown key"),
    ({"meeting": {"duration_s": 10}, "participant": [{"name": "A"}, {"name": "A"}]}, "unique"),
])
def test_bad_scripts_are_clear_errors(data, where):
    with pytest.raises(ScriptError, match=where.replace("[", r"\[").replace("]", r"\]")):
        parse_script(data)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ScriptError, match="not found"):
        load_script(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[meeting\n")
    with pytest.raises(ScriptError, match="not valid TOML"):
        load_script(bad)
