"""Documents: page images cut into text lines (pages), read with one recognizer batch (reading), written as
hOCR (hocr), and scored on transcribed sample pages (page_eval)."""
