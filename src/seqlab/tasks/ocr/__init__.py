"""OCR: the base both sides share (charset, on-disk format, normalisation, params sections); synth/ renders
the data, recognizer/ reads it."""
