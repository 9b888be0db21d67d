"""Trained models outside torch: ONNX export with a numeric check (`onnx`), onnxruntime inference behind the
same calls predict makes (`runtime`), and the ONNX file as an MLflow model that loads without torch
(`mlflow_onnx`)."""
