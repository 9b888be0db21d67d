"""The recognizer: models, augmentation, batching, CTC decoding, metrics, the Task and the Tesseract reference."""
