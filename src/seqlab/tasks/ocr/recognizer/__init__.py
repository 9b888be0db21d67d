"""The recognizer: models, augmentation, batching, CTC decoding, metrics, the Task and the reference engines
(Tesseract, RapidOCR)."""
