"""`rtpitch devices` names MIDI ports as a DAW user reads them."""

from rtpitch.devices import format_midi_ports


def test_sources_and_destinations_with_rtpitch_marked():
    text = format_midi_ports({"JACK": {"error": None, "inputs": ["rtpitch:rtpitch", "keys:out"],
                                       "outputs": ["synth:in"]}})
    lines = text.splitlines()
    assert lines[0] == "JACK:"
    assert "sources (a DAW records from these)" in lines[1]
    assert "'rtpitch:rtpitch' (rtpitch's own)" in lines[1] and "'keys:out'" in lines[1]
    assert "destinations (--midi-port sends to one)" in lines[2] and "'synth:in'" in lines[2]
    assert "(rtpitch's own)" not in lines[2]
    assert len(lines) == 3  # rtpitch's port is there: no hint how to add it


def test_hint_when_rtpitch_is_not_running():
    text = format_midi_ports({"ALSA": {"error": "no ALSA sequencer", "inputs": [], "outputs": []},
                              "JACK": {"error": None, "inputs": [], "outputs": []}})
    assert "ALSA: none (no ALSA sequencer)" in text
    assert "sources (a DAW records from these):      none" in text
    assert text.splitlines()[-1] == "rtpitch listen --midi-out adds the source 'rtpitch' (under JACK: 'rtpitch:rtpitch')"
