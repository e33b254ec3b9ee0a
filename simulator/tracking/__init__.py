"""Real tracked needles and probes over OpenIGTLink (hybrid simulation), without Qt.

- `protocol`: the OpenIGTLink wire format: a strict reader (our errors only, whatever the bytes)
  and the writer (TRANSFORM, IMAGE, STRING, STATUS; CRC-64 compiled);
- `client`: `TrackingClient`, every message in arrival order with its arrival time, reconnecting;
- `server`: `TrackingServer`, streams to every client (3D Slicer, Perk Tutor) on its own thread;
- `session`: `TrackingSession`, a tracked attempt: poses checked, registered, calibrated, timed and
  given to the Procedure one tracker frame at a time; the connection's state (connected, waiting,
  stale, lost) and the pause it means;
- `registration`: fiducial registration (tracker reference -> patient) with FRE and TRE;
- `calibration`: pivot calibration of the needle tip;
- `simtracker`: a recorded tracked file streamed as PLUS streams a live tracker (demos, tests);
- `streamer`: our session out as PLUS would stream it (needle, probe, ultrasound, fluoroscopy);
- `hand_motion`: a recorded-looking hand-held needle pass (demos, benchmark, tests).

Why our own reader, client and server rather than pyigtl's: see `protocol`'s notes. pyigtl is
the independent implementation the tests check ours against, both ways.
"""
