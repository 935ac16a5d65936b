"""DeviceSource through a real JACK server (dummy backend): a JACK client plays
a 440 Hz sine into PortAudio's input ports; DeviceSource must read it."""

import time

import numpy as np
import pytest
import sounddevice as sd

from rtpitch import capture, devices, pa_stream
from rtpitch.bench import callback_jitter
from rtpitch.errors import ConfigError, DeviceError

FAKE_INPUTS = [
    {"index": 0, "name": "system", "hostapi": "JACK Audio Connection Kit", "max_input_channels": 2,
     "default_samplerate": 48000.0},
    {"index": 3, "name": "USB Mic", "hostapi": "ALSA", "max_input_channels": 1, "default_samplerate": 44100.0},
    {"index": 4, "name": "USB Mic Pro", "hostapi": "ALSA", "max_input_channels": 2, "default_samplerate": 4000.0},
]


def _portaudio_inputs(client):
    return {p.name for p in client.get_ports(is_audio=True, is_input=True)
            if p.name.startswith("PortAudio")}


def test_resolve_input_device():
    r = devices.resolve_input_device
    assert r(3, FAKE_INPUTS)["name"] == "USB Mic"
    assert r("3", FAKE_INPUTS)["name"] == "USB Mic"
    assert r("SYS", FAKE_INPUTS)["index"] == 0
    assert r("usb mic", FAKE_INPUTS)["index"] == 3  # exact name wins over substring
    with pytest.raises(DeviceError, match="ambiguous; matches: 3 'USB Mic' \\(ALSA\\), 4"):
        r("usb", FAKE_INPUTS)
    with pytest.raises(DeviceError, match="no input device matches 'foo'; inputs: 0 'system' "):
        r("foo", FAKE_INPUTS)
    with pytest.raises(DeviceError, match="no input device with index 7"):
        r(7, FAKE_INPUTS)


def test_channel_rate_and_busy_errors(monkeypatch):
    monkeypatch.setattr(capture, "list_input_devices", lambda rescan=True: FAKE_INPUTS)
    with pytest.raises(ConfigError, match="channel 2 does not exist: 'system' has 2 input"):
        capture.DeviceSource("system", 2)
    with pytest.raises(ConfigError, match="runs at 4000 Hz"):
        capture.DeviceSource(4)

    def busy(*args):
        pa_stream.check(sd._lib.paDeviceUnavailable, "Pa_OpenStream")

    monkeypatch.setattr(capture, "PaInputStream", busy)
    src = capture.DeviceSource(3)
    assert src.sample_rate == 44100 and src.channels == 1
    with pytest.raises(DeviceError, match=r"^cannot open input device 3 'USB Mic' \(ALSA\): Pa_OpenStream: "
                                          r"Device unavailable \[PaErrorCode -9985\]; is it busy or gone\?$"):
        src.start()
    assert src.origin_monotonic() is None and not src.lost and not src.finished


@pytest.mark.jack
def test_device_source_reads_jack_sine(jack_server):
    import jack

    freq, amp = 440.0, 0.5
    player = jack.Client("rtpitch-test-player", no_start_server=True)
    out = player.outports.register("out")
    sr = player.samplerate
    phase = [0]

    @player.set_process_callback
    def process(frames):
        n = np.arange(phase[0], phase[0] + frames)
        out.get_array()[:] = amp * np.sin(2 * np.pi * freq * n / sr)
        phase[0] += frames

    player.activate()
    try:
        src = capture.DeviceSource("system", None, ring_seconds=1.0)
        assert src.sample_rate == sr and src.hostapi_name.startswith("JACK")
        before = _portaudio_inputs(player)
        src.start()
        try:
            ours = sorted(_portaudio_inputs(player) - before)  # e.g. PortAudio:in_0, in_1
            assert len(ours) == src.channels
            for name in ours:
                player.connect(out, name)
            time.sleep(0.2)  # let the connection take effect
            while src.read(0.0) is not None:  # discard audio from before it
                pass
            blocks = []
            t_end = time.monotonic() + 2.0
            while time.monotonic() < t_end:
                b = src.read(0.1)
                if b is not None:
                    blocks.append(b)
        finally:
            src.stop()
    finally:
        player.deactivate()
        player.close()

    positions = [b.position for b in blocks]
    lengths = [len(b.samples) for b in blocks]
    assert positions == list(np.cumsum([positions[0]] + lengths[:-1]))  # contiguous
    x = np.concatenate([b.samples for b in blocks])
    assert len(x) > 1.5 * sr
    assert src.overrun_samples == 0  # input_overflows counts JACK xruns: not asserted
    seg = x[-sr:]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    assert abs(np.argmax(spec) * sr / len(seg) - freq) <= 1.0
    assert abs(np.sqrt(np.mean(seg ** 2)) - amp / np.sqrt(2)) < 0.02
    assert src.blocksize > 0 and src.finished
    stats = callback_jitter(src.callback_times())
    print("input_overflows", src.input_overflows, "blocksize", src.blocksize, stats)
    assert src.callbacks > 0 and stats["mean_ms"] > 0


def _hog_gil(stop: list) -> None:
    """Pure-Python busy loop until ``stop`` is non-empty: holds the GIL, giving
    it up only when another thread has waited ``sys.getswitchinterval()``."""
    n = 0
    while not stop:
        n += 1


@pytest.mark.jack
def test_capture_keeps_up_while_another_thread_holds_the_gil(jack_server):
    """The audio callback takes no GIL: while a busy Python thread holds it
    (switch interval 1 s), every JACK cycle still lands in the ring. (The former
    Python callback, through sounddevice, got 4-5 of ~560 cycles through in
    3 s, with 3 input overflows.)"""
    import sys
    import threading

    src = capture.DeviceSource("system", None, ring_seconds=5.0)
    src.start()
    stop = []
    hog = threading.Thread(target=_hog_gil, args=(stop,), daemon=True)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        time.sleep(0.2)
        calls0, t0 = src.callbacks, time.monotonic()
        hog.start()  # the main thread waits ~1 s for the GIL here, and again after the sleep
        time.sleep(2.0)
        calls1, t1 = src.callbacks, time.monotonic()
    finally:
        stop.append(True)
        if hog.is_alive():
            hog.join()
        sys.setswitchinterval(interval)
        src.stop()
    blocks = []
    while (b := src.read(0.0)) is not None:
        blocks.append(b)
    block = src.blocksize
    expected = (t1 - t0) * src.sample_rate / block
    print(f"callbacks {calls1 - calls0} in {t1 - t0:.3f} s (expected {expected:.1f}), "
          f"input_overflows {src.input_overflows} of {src.callbacks} callbacks, blocksize {block}")
    assert t1 - t0 > 2.5, t1 - t0  # the hog did hold the GIL
    # within 25 % (at least 10 cycles): on a loaded machine a JACK cycle may run tens of ms late
    # just when we look, and the dummy driver loses cycles to xruns (740 of 756 with 18 input
    # overflows on a loaded CI machine); a callback that waited for the GIL got ~1 %
    # (the CI machine that once lost 15 % of JACK's cycles in another test is why the bound is
    # 25 %, still far from the 1 % of a callback that needs the GIL)
    tol = max(10.0, 0.25 * expected)
    assert abs((calls1 - calls0) - expected) <= tol, (calls1 - calls0, expected, tol)
    # PortAudio flags every JACK server xrun: on a loaded machine some come whatever the callback
    # does (18 of 779 callbacks on that CI machine; the GIL-waiting callback: 3 of ~5)
    assert src.input_overflows <= src.callbacks // 4, (src.input_overflows, src.callbacks)
    positions = [b.position for b in blocks]
    lengths = [len(b.samples) for b in blocks]
    assert positions[0] == 0 and positions == list(np.cumsum([0] + lengths[:-1])), positions  # contiguous
    assert sum(lengths) == src.callbacks * block, (sum(lengths), src.callbacks, block)  # nothing lost
    assert src.overrun_samples == 0
