"""Text-to-speech engines and their voices: espeak-ng (with variants), flite, festival (with
accented non-English voices), piper; batch synthesis and the LPC vocoder that re-speaks clips."""
