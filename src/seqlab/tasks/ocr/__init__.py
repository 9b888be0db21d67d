"""CTC OCR task: charsets, word sources and trdg word-image rendering."""
