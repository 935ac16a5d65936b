"""Listing audio input devices and MIDI ports (``rtpitch devices``).

PortAudio enumerates devices once, when it is initialised; a JACK server
started later is invisible until :func:`rescan_audio` re-initialises it.
"""

from __future__ import annotations

import os

import sounddevice as sd


def rescan_audio() -> None:
    """Re-initialise PortAudio so devices (e.g. a JACK server) that appeared
    since import are seen. Never call it while a stream is open: it closes them.
    Works also after PortAudio was terminated completely (``sd._initialized == 0``)."""
    if sd._initialized:
        sd._terminate()
    sd._initialize()


def list_input_devices(*, rescan: bool = True) -> list[dict]:
    """Audio input devices: dicts with index, name, hostapi, max_input_channels,
    default_samplerate (Hz)."""
    if rescan:
        rescan_audio()
    apis = sd.query_hostapis()
    out = []
    for dev in sd.query_devices():
        if dev["max_input_channels"] > 0:
            out.append({
                "index": dev["index"],
                "name": dev["name"],
                "hostapi": apis[dev["hostapi"]]["name"],
                "max_input_channels": dev["max_input_channels"],
                "default_samplerate": dev["default_samplerate"],
            })
    return out


def format_devices(devices: list[dict] | None = None) -> str:
    """Text table of input devices (from :func:`list_input_devices` by default)."""
    if devices is None:
        devices = list_input_devices()
    if not devices:
        return "no audio input devices (start JACK or plug in a microphone)"
    lines = [f"{'idx':>3}  {'name':<32} {'host API':<28} {'ch':>3} {'rate':>7}"]
    for d in devices:
        lines.append(f"{d['index']:>3}  {d['name'][:32]:<32} {d['hostapi'][:28]:<28} "
                     f"{d['max_input_channels']:>3} {d['default_samplerate']:>7.0f}")
    return "\n".join(lines)


def jack_server_running() -> bool:
    """True if a JACK server accepts clients (never starts one)."""
    try:
        import jack
    except (ImportError, OSError):
        # JACK-Client not installed: look for the server's socket instead
        return any(f.startswith("jack_default_") for f in _listdir("/dev/shm") + _listdir("/tmp"))
    jack.set_error_function(lambda msg: None)
    jack.set_info_function(lambda msg: None)
    try:
        client = jack.Client("rtpitch-probe", no_start_server=True)
    except jack.JackError:
        return False
    finally:
        jack.set_error_function(None)
        jack.set_info_function(None)
    client.close()
    return True


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def list_midi_ports() -> dict[str, dict]:
    """MIDI ports per compiled rtmidi API.

    Returns ``{api_name: {"inputs": [names], "outputs": [names], "error": str | None}}``;
    an API that cannot run here (no ALSA sequencer, no JACK server) has empty
    lists and ``error`` says why and what to do. Never raises for that.
    """
    try:
        import rtmidi
    except ImportError as err:
        return {"rtmidi": {"inputs": [], "outputs": [], "error": f"python-rtmidi not importable ({err})"}}
    result = {}
    for api in rtmidi.get_compiled_api():
        name = rtmidi.get_api_display_name(api)
        entry = {"inputs": [], "outputs": [], "error": None}
        result[name] = entry
        if api == rtmidi.API_LINUX_ALSA and not os.path.exists("/dev/snd/seq"):
            entry["error"] = "no ALSA sequencer (/dev/snd/seq missing); start JACK or name a port"
            continue
        if api == rtmidi.API_UNIX_JACK and not jack_server_running():
            entry["error"] = "no JACK server running; start jackd"
            continue
        try:
            entry["inputs"] = rtmidi.MidiIn(api).get_ports()
            entry["outputs"] = rtmidi.MidiOut(api).get_ports()
        except (rtmidi.SystemError, rtmidi.RtMidiError, RuntimeError) as err:
            entry["error"] = f"cannot query ports ({' '.join(str(err).split())})"
    return result


def format_midi_ports(ports: dict[str, dict] | None = None, own: str = "rtpitch") -> str:
    """Text listing of :func:`list_midi_ports`, named as a DAW user reads them:
    *sources* send MIDI (a DAW records from them; rtpitch's own port is one while
    ``listen --midi-out`` runs, marked), *destinations* receive it (``--midi-port``)."""
    if ports is None:
        ports = list_midi_ports()

    def names(found, mark):
        shown = [repr(p) + (" (rtpitch's own)" if mark and p.split(":")[0].strip() == own else "") for p in found]
        return ", ".join(shown) or "none"

    lines = []
    for api, e in ports.items():
        if e["error"]:
            lines.append(f"{api}: none ({e['error']})")
            continue
        lines.append(f"{api}:")
        lines.append("  sources (a DAW records from these):      " + names(e["inputs"], True))
        lines.append("  destinations (--midi-port sends to one): " + names(e["outputs"], False))
    if not lines:
        return "no MIDI APIs compiled into python-rtmidi"
    if not any(p.split(":")[0].strip() == own for e in ports.values() if not e["error"] for p in e["inputs"]):
        lines.append(f"rtpitch listen --midi-out adds the source '{own}' (under JACK: '{own}:{own}')")
    return "\n".join(lines)
