"""The evaluate stage: test metrics, tables and figures to metrics/<id>/, and the Model Registry's champion
rule. Imports seqlab.core and seqlab.tracking; tasks come by name through the registry."""
