"""The file MLflow runs to rebuild a seqlab pyfunc model ("models from code"): it names the model class
instead of unpickling an object, so loading a seqlab model runs this code and the checkpoint's safe
loader, nothing from a pickle."""

from mlflow.models import set_model

from seqlab.tracking.mlflow_model import SeqlabModel

set_model(SeqlabModel())
