"""The train stage: one training loop for every task, devices and mixed precision, DDP. Imports seqlab.core and
seqlab.tracking; tasks come by name through the registry."""
