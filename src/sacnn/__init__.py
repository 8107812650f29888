"""sacnn: per-neuron CNN and self-attention models of V1, reproduced as a Snakemake workflow.

The package holds the science code (data, simulation, models, training, metrics); the
workflow under ``workflow/`` only wires it together.
"""

__version__ = "0.1.0"
