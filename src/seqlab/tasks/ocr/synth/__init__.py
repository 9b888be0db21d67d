"""Stage-time data synthesis: fonts, corpus, text sources and the two renderers (trdg, reserved Pillow)."""
