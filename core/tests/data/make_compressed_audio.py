"""Writes sine440.ogg (Vorbis) and sine440.mp3 for core/tests/audio_compressed.rs.

0.5 s at 22050 Hz, stereo: left 0.5*sin(2*pi*440*t), right half of that. Needs `pip install soundfile numpy`
(libsndfile with Vorbis and MP3 encoders). The files are committed; run this only to remake them.
"""
import numpy as np
import soundfile as sf

sr = 22050
t = np.arange(int(0.5 * sr)) / sr
x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
stereo = np.stack([x, 0.5 * x], 1)
sf.write("sine440.ogg", stereo, sr, format="OGG", subtype="VORBIS")
sf.write("sine440.mp3", stereo, sr, format="MP3")
