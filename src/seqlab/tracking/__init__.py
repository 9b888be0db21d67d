"""MLflow: the tracking store and its runs, and a checkpoint as an MLflow model. Imports only seqlab.core."""
