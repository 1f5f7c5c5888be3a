"""Decoding media: clips to frames and 16 kHz mono waveforms (:mod:`~blemore.media.decoder`), and the
hand-off of decoded arrays between processes through shared memory (:mod:`~blemore.media.handoff`)."""
