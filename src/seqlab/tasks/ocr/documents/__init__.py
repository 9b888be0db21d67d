"""Real documents: ground-truth folders of transcribed line images, read into the OCR data format."""
