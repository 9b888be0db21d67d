"""Real documents: a user's transcribed ground truth read into the OCR data format (ground_truth), page images
cut into text lines (pages), read with one recognizer batch (reading), written as hOCR (hocr), and scored on
transcribed sample pages (page_eval)."""
